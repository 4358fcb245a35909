#!/usr/bin/env python3
"""A TCP proxy that counts the bytes each way, for the registry-cache benchmark (bench/cache.sh).

Every tool reaches the registry through it, so "bytes moved" is measured the same way for all of them, from
outside: `down` = registry → client (pulls, cache imports), `up` = client → registry (pushes, cache exports),
headers included. The totals are rewritten to STATE (`down up`, one line) every 0.1 s and on each closed
connection; a reader takes the difference across one run.

usage: byteproxy.py LISTEN_PORT UPSTREAM_HOST:PORT STATE
"""
import socket
import sys
import threading
import time

totals = {"down": 0, "up": 0}
lock = threading.Lock()


def write_state(path):
    with lock:
        text = f"{totals['down']} {totals['up']}\n"
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(text)
    # Atomic: a reader never sees half a line.
    import os
    os.replace(tmp, path)


def pump(src, dst, key):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
            with lock:
                totals[key] += len(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn, upstream, state):
    try:
        up = socket.create_connection(upstream)
    except OSError:
        conn.close()
        return
    a = threading.Thread(target=pump, args=(conn, up, "up"), daemon=True)
    b = threading.Thread(target=pump, args=(up, conn, "down"), daemon=True)
    a.start()
    b.start()
    a.join()
    b.join()
    conn.close()
    up.close()
    write_state(state)


def main():
    port, upstream, state = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    host, uport = upstream.rsplit(":", 1)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    write_state(state)

    def ticker():
        while True:
            time.sleep(0.1)
            write_state(state)

    threading.Thread(target=ticker, daemon=True).start()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, (host, int(uport)), state), daemon=True).start()


if __name__ == "__main__":
    main()
