#!/usr/bin/python3
"""console-receiver.py SOCKET OUT: serve one --console-socket connection.

Listens on the unix socket SOCKET (made here), accepts one connection,
takes the pty master it carries (SCM_RIGHTS) and copies everything the
container writes to its terminal into the file OUT, until the terminal
closes. Used by integration/differential.sh to see what a -t container
sees, with hutch and with crun alike.
"""
import array
import os
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
# Ready: the caller waits for the socket file before starting a runtime.
conn, _ = srv.accept()
fds = array.array("i")
_, anc, _, _ = conn.recvmsg(4096, socket.CMSG_LEN(fds.itemsize))
for level, kind, data in anc:
    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
        fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
if not fds:
    sys.exit("no fd received on " + path)
master = fds[0]
with open(out, "wb") as f:
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO once the last slave fd is closed
            break
        if not chunk:
            break
        f.write(chunk)
