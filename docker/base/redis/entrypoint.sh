#!/bin/sh
# As the official image: without a config file, protected mode off and
# every interface (the network is the compose project's own).
if [ "$1" = redis-server ]; then
    shift
    exec redis-server --protected-mode no --bind 0.0.0.0 "$@"
fi
exec "$@"
