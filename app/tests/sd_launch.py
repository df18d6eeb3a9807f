"""A tiny stand-in for systemd socket activation (like `systemd-socket-activate`).

    python sd_launch.py --tcp 127.0.0.1:PORT --unix /path/probe.sock -- COMMAND ARGS...
    python sd_launch.py --fd N --unix /path/probe.sock -- COMMAND ARGS...

Binds and listens on each socket in order (or, with --fd, takes a listening socket it inherited,
as systemd keeps one socket across restarts of the services that share it), moves them to fds
3, 4, ..., sets LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (this process's pid) and execs
COMMAND, which keeps the pid.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

SD_LISTEN_FDS_START = 3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tcp", action="append", default=[], help="HOST:PORT (listen, name 'public')")
    parser.add_argument("--fd", action="append", type=int, default=[], help="inherited listening fd (name 'public')")
    parser.add_argument("--unix", action="append", default=[], help="PATH (listen, name 'probe')")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command is required after --")

    sockets: list[tuple[socket.socket, str]] = [(socket.socket(fileno=fd), "public") for fd in args.fd]
    for address in args.tcp:
        host, port = address.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(128)
        sockets.append((sock, "public"))
    for path in args.unix:
        if os.path.exists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(128)
        sockets.append((sock, "probe"))

    # Move the sockets out of the way first, then onto 3, 4, ... (they may already sit there).
    high = [os.dup(sock.fileno()) for sock, _ in sockets]
    for sock, _ in sockets:
        sock.close()
    for i, fd in enumerate(high):
        os.dup2(fd, SD_LISTEN_FDS_START + i, inheritable=True)
    for fd in high:
        if fd >= SD_LISTEN_FDS_START + len(high):
            os.close(fd)

    env = dict(os.environ)
    env["LISTEN_FDS"] = str(len(sockets))
    env["LISTEN_FDNAMES"] = ":".join(name for _, name in sockets)
    env["LISTEN_PID"] = str(os.getpid())
    sys.stdout.flush()
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main()
