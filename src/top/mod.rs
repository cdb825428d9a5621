//! `caching-proxy top`: the dashboard in a terminal, like `varnishtop`. It
//! finds the running instance as `caching-proxy cache ...` does, asks its
//! admin API for `/dashboard.json` every second and draws it with ratatui
//! (works over SSH: plain terminal escapes); `q`, Esc or Ctrl-C quits.

mod view;

use std::time::Duration;

use http::Method;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;

use crate::admin::client::{AdminClientError, Target};

/// How often the view is refreshed.
const REFRESH: Duration = Duration::from_secs(1);

/// Why `top` stopped.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    /// The terminal could not be drawn on.
    #[error("cannot draw on the terminal")]
    Terminal(#[source] std::io::Error),
    /// The instance could not be asked.
    #[error(transparent)]
    Admin(#[from] AdminClientError),
    /// The instance's answer is not the dashboard's JSON.
    #[error("the instance's /dashboard.json is not JSON (an older version?)")]
    Garbled(#[source] serde_json::Error),
}

/// Runs until the user quits.
pub async fn run(target: Target) -> Result<(), TopError> {
    // Fail before taking the screen if nothing answers.
    let mut data = fetch(&target).await?;
    let mut terminal = ratatui::try_init().map_err(TopError::Terminal)?;
    let (keys, mut pressed) = mpsc::channel(8);
    // crossterm reads keys by blocking: a thread of its own.
    std::thread::spawn(move || {
        loop {
            match event::read() {
                Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => {
                    let quit = matches!(key.code, KeyCode::Char('q') | KeyCode::Esc)
                        || (key.code == KeyCode::Char('c')
                            && key.modifiers.contains(KeyModifiers::CONTROL));
                    if quit {
                        let _ = keys.blocking_send(());
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let mut every = tokio::time::interval(REFRESH);
    let mut error = None;
    let drawn = loop {
        let frame = view::Frame {
            address: target.address,
            data: &data,
            error: error.as_deref(),
        };
        if let Err(err) = terminal.draw(|f| view::draw(f, &frame)) {
            break Err(TopError::Terminal(err));
        }
        tokio::select! {
            _ = every.tick() => {}
            _ = pressed.recv() => break Ok(()),
        }
        match fetch(&target).await {
            Ok(fresh) => {
                data = fresh;
                error = None;
            }
            // Shown, and asked again at the next tick: a restart of the
            // instance is a moment's gap, not the end of `top`.
            Err(err) => error = Some(crate::error::chain(&err)),
        }
    };
    ratatui::restore();
    drawn
}

async fn fetch(target: &Target) -> Result<serde_json::Value, TopError> {
    let body = target.call(Method::GET, "/dashboard.json", None).await?;
    serde_json::from_slice(&body).map_err(TopError::Garbled)
}
