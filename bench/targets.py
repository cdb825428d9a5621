"""The servers a benchmark runs: a static nginx origin (no access log,
keep-alive, as nginx's own tuning advice has it, so that it is never what
limits a run), and the targets under test, each alone on the proxy core:
caching-proxy, nginx `proxy_cache`, Varnish, and a static nginx serving
the same files ("direct", the ceiling of this machine). Every target keeps
its usual behaviour on: an access log to a file, caching-proxy's metrics
and `Cache-Status`.

The HTTPS and HTTP/2 scenarios use one self-signed certificate for every
target (ECDSA P-256, TLS 1.3 only). Varnish has no TLS of its own and
takes no part in them.
"""

import http.client
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# CACHING_PROXY_BIN: measure another build (a profiling or fastrel one).
BIN = Path(os.environ.get("CACHING_PROXY_BIN", ROOT / "target" / "release" / "caching-proxy"))
LOAD_CORE, PROXY_CORE = "0", "1"
PORTS = {"origin": 18100, "caching-proxy": 18101, "nginx": 18102, "varnish": 18103, "direct": 18104,
         "caching-proxy/full": 18111, "nginx/full": 18112, "varnish/full": 18113}
TLS_PORTS = {"caching-proxy": 18106, "nginx": 18107, "direct": 18108}
ADMIN_PORT = 18105
ADMIN_PORTS = {"caching-proxy": ADMIN_PORT, "caching-proxy/full": 18115}
STATUS_PATH = "/origin-status"

STATIC_LOCATIONS = """
        location = /1k { add_header Cache-Control "public, max-age=3600"; }
        location = /64k { add_header Cache-Control "public, max-age=3600"; }
        location /u/ { add_header Cache-Control "public, max-age=3600"; try_files /1k =404; }
        location /big/ { add_header Cache-Control "public, max-age=86400"; try_files /64k =404; }
        location = /nostore { add_header Cache-Control "no-store"; try_files /1k =404; }
"""


def nginx_conf(work: Path, name: str, server: str, http_extra: str = "") -> Path:
    conf = work / f"{name}.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
daemon off;
pid {work}/{name}.pid;
error_log {work}/{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
    default_type application/octet-stream;
    sendfile off;
    keepalive_requests 1000000;
    {http_extra}
    server {{
{server}
    }}
}}
""")
    return conf


def tls_lines(work: Path, port: int, http2: bool) -> str:
    return f"""
        listen 127.0.0.1:{port} ssl{' http2' if http2 else ''};
        ssl_certificate {work}/cert.pem;
        ssl_certificate_key {work}/key.pem;
        ssl_protocols TLSv1.3;
        ssl_session_cache shared:SSL:1m;"""


def nginx_cache_conf(work: Path, port: int, origin_port: int, cache_dir: Path, server_extra: str = "",
                     max_size: str = "4g", name: str = "nginx") -> Path:
    """nginx `proxy_cache` in front of the origin: upstream keepalive,
    HTTP/1.1 upstream, the access log on, the cache in `cache_dir`."""
    server = f"""
        listen 127.0.0.1:{port};
        access_log {work}/{name}.access.log;
{server_extra}
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache c;
            add_header X-Cache $upstream_cache_status;
        }}"""
    extra = f"""
    proxy_cache_path {cache_dir} levels=1:2 keys_zone=c:64m max_size={max_size} inactive=1h use_temp_path=off;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 64; }}"""
    return nginx_conf(work, name, server, extra)


def start(args, core, **kw):
    return subprocess.Popen(["taskset", "-c", core, *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, **kw)


def wait_ready(port, path="/1k", timeout=20.0, tls=False):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = connection(port, tls, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"nothing answers on port {port}")


def connection(port, tls=False, timeout=5):
    if tls:
        import ssl
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


def get(port, path, tls=False):
    conn = connection(port, tls)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response


def origin_requests(log: Path) -> int:
    """Requests an origin logged (for the benchmarks whose origin logs)."""
    try:
        with open(log, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def origin_served() -> int:
    """Requests the benchmark's origin has answered (nginx's stub_status,
    not counting the status requests themselves)."""
    text = get_text(PORTS["origin"], STATUS_PATH)
    return int(re.search(r"\s(\d+)\s+(\d+)\s+(\d+)\s*\n", text).group(3))


def get_text(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    return conn.getresponse().read().decode()


def dir_bytes(path: Path) -> int:
    """Memory a directory on tmpfs really takes: allocated blocks, not sizes."""
    if not path.exists():
        return 0
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def nginx_version():
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    return out.strip().split("/")[-1]


def varnish_version():
    out = subprocess.run(["varnishd", "-V"], capture_output=True, text=True).stderr
    m = re.search(r"varnish-([\d.]+)", out)
    return m.group(1) if m else "?"


def make_www(work: Path) -> Path:
    """The origin's files: 1 KiB and 64 KiB of random bytes."""
    www = work / "www"
    www.mkdir()
    (www / "1k").write_bytes(os.urandom(1024))
    (www / "64k").write_bytes(os.urandom(65536))
    return www


class Bench:
    """The origin and the targets of one benchmark run, in `work`. A target
    is named by its kind, and `kind/full` is a second instance of a cache
    with a cache size of its own."""

    def __init__(self, work: Path):
        self.work = work
        self.procs = {}
        self.www = make_www(work)
        self.shm = Path(tempfile.mkdtemp(prefix="bench-nginx-cache-", dir="/dev/shm"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", work / "key.pem", "-out", work / "cert.pem", "-days", "2",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)

    def start_origin(self):
        server = f"""
        listen 127.0.0.1:{PORTS['origin']} backlog=4096;
        root {self.www};
        access_log off;
        location = {STATUS_PATH} {{ stub_status; }}
{STATIC_LOCATIONS}"""
        self.procs["origin"] = start(["nginx", "-c", nginx_conf(self.work, "origin", server)], LOAD_CORE)
        wait_ready(PORTS["origin"])

    def pid(self, target):
        return self.procs[target].pid

    def admin_port(self, target):
        return ADMIN_PORTS[target]

    def cache_dir(self, target):
        """Where an nginx target keeps its cache (on tmpfs)."""
        return self.shm / target.replace("/", "-")

    def file(self, target, suffix):
        """A file of caching-proxy's in a directory of its own."""
        home = self.work / target.replace("/", "-")
        home.mkdir(exist_ok=True)
        return home / f"{target.replace('/', '-')}{suffix}"

    def start(self, target, cache_size=None, wait=True):
        """Starts `target` on the proxy core, with its default cache size
        or `cache_size` MiB; `wait` for it to answer."""
        kind = target.split("/")[0]
        port = PORTS[target]
        tls_port = TLS_PORTS.get(target)
        if kind == "caching-proxy":
            tls = (f'[[listeners]]\naddress = "127.0.0.1:{tls_port}"\n'
                   f'tls = {{ cert = "{self.work}/cert.pem", key = "{self.work}/key.pem" }}\n') if tls_port else ""
            toml = self.file(target, ".toml")
            toml.write_text(f"""
[[listeners]]
address = "127.0.0.1:{port}"

{tls}
[[origins]]
name = "origin"
url = "http://127.0.0.1:{PORTS['origin']}"

[cache]
file = "{self.file(target, '.cache.json')}"
{f'max_size = "{cache_size}MiB"' if cache_size else ''}

[admin]
address = "127.0.0.1:{ADMIN_PORTS[target]}"
""")
            log = open(self.file(target, ".log"), "ab")
            proc = subprocess.Popen(["taskset", "-c", PROXY_CORE, str(BIN), "--config", str(toml)], stdout=log,
                                    stderr=log, env={**os.environ, "RUST_LOG": "info"})
        elif kind == "nginx":
            cache = self.cache_dir(target)
            subprocess.run(["rm", "-rf", str(cache)], check=True)
            tls = tls_lines(self.work, tls_port, http2=True) if tls_port else ""
            conf = nginx_cache_conf(self.work, port, PORTS["origin"], cache, tls,
                                    max_size=f"{cache_size}m" if cache_size else "4g",
                                    name=target.replace("/", "-"))
            proc = start(["nginx", "-c", conf], PROXY_CORE)
        elif kind == "varnish":
            proc = start(["varnishd", "-F", "-j", "none", "-a", f"127.0.0.1:{port}", "-b",
                          f"127.0.0.1:{PORTS['origin']}", "-s", f"malloc,{cache_size or 2048}m",
                          "-n", self.work / target.replace("/", "-")], PROXY_CORE)
        else:
            server = f"""
        listen 127.0.0.1:{port};
{tls_lines(self.work, tls_port, http2=True)}
        root {self.www};
        access_log {self.work}/direct.access.log;
{STATIC_LOCATIONS}"""
            proc = start(["nginx", "-c", nginx_conf(self.work, "direct", server)], PROXY_CORE)
        self.procs[target] = proc
        if wait:
            wait_ready(port, "/nostore")
        return proc

    def stop(self, target):
        proc = self.procs.pop(target, None)
        if proc:
            proc.terminate()
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self):
        for target in list(self.procs):
            self.stop(target)

    def clean(self):
        subprocess.run(["rm", "-rf", str(self.shm)], check=False)
