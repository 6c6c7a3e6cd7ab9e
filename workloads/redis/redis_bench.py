#!/usr/bin/python3
"""The redis workload: redis-server driven by redis-benchmark on 127.0.0.1.

    /usr/bin/python3 workloads/redis/redis_bench.py small|full

Starts Debian's redis-server on a free loopback port (bound to 127.0.0.1
only, no persistence, its files in a temporary directory), fills it with
DEBUG POPULATE (a deterministic data set of string keys), runs
redis-benchmark against it (a fixed number of requests of a fixed set of
tests, 20 clients, pipelines of 8), then asks the server for DBSIZE and
DEBUG DIGEST (a hash of the whole data set), shuts it down and prints one
line:

    redis: size=small keys=50000 requests=10000 tests=... dbsize=N digest=HEX

Without -r, redis-benchmark uses one fixed key per test, and every test's
effect on the data set does not depend on how the clients interleave
(pushes and pops of equal values, counters, sets of one member), so the
digest is the same on every run. redis-benchmark's throughput report goes
to stderr.

Bounded: the requests are fixed, and the whole run is stopped after
DEADLINE seconds (exit status 1, server killed). Only loopback traffic.
Exit status 0 when the line is printed; 1 if the server fails to start,
the benchmark fails or the deadline passes; 2 on a bad argument.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SIZES = {
    # size: (keys populated, requests per test)
    "small": (50000, 10000),
    "full": (400000, 120000),
}
TESTS = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset"
CLIENTS, PIPELINE = 20, 8
DEADLINE = 300.0
PROG = "redis_bench.py"


class Failure(Exception):
    pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Client:
    """Just enough RESP to send a command and read one reply."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise Failure("the server closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:].decode()
        if kind == b"-":
            raise Failure(f"server error: {rest}")
        if kind in (b"+", b":"):
            return rest
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                data = self.sock.recv(65536)
                if not data:
                    raise Failure("the server closed the connection")
                self.buf += data
            value, self.buf = self.buf[:n].decode(), self.buf[n + 2:]
            return value
        raise Failure(f"unexpected reply {line[:40]!r}")

    def call(self, *args):
        self.sock.sendall(encode(*args))
        return self.reply()

    def close(self):
        self.sock.close()


def start_server(workdir):
    """(process, port) of a redis-server answering PING, or Failure."""
    for _ in range(5):
        port = free_port()
        log = open(os.path.join(workdir, "redis.log"), "w")
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", workdir,
             "--enable-debug-command", "local", "--loglevel", "warning",
             # Redis rewrites its argv and environment area to set its
             # process title; the hooks keep pointers to HEAPINDEX_* values
             # there, so the statistics path would be lost at exit.
             "--set-proc-title", "no"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        for _ in range(200):
            if proc.poll() is not None:
                break                       # e.g. the port was taken meanwhile: try another
            try:
                c = Client(port, 5)
                try:
                    if c.call("PING") == "PONG":
                        return proc, port
                finally:
                    c.close()
            except OSError:
                time.sleep(0.02)
        stop(proc)
    raise Failure("redis-server did not start (see its log above)")


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def run(size, workdir):
    keys, requests = SIZES[size]
    deadline = time.monotonic() + DEADLINE
    proc, port = start_server(workdir)
    try:
        c = Client(port, DEADLINE)
        c.call("DEBUG", "POPULATE", keys, "key", 32)
        bench = subprocess.run(
            ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(requests),
             "-c", str(CLIENTS), "-P", str(PIPELINE), "-q", "-t", TESTS],
            stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr,
            timeout=max(1.0, deadline - time.monotonic()))
        if bench.returncode != 0:
            raise Failure(f"redis-benchmark exited {bench.returncode}")
        dbsize = c.call("DBSIZE")
        digest = c.call("DEBUG", "DIGEST")
        c.sock.sendall(encode("SHUTDOWN", "NOSAVE"))
        c.close()
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        if proc.returncode != 0:
            raise Failure(f"redis-server exited {proc.returncode}")
    except subprocess.TimeoutExpired:
        raise Failure(f"stopped after the {DEADLINE:.0f} s deadline")
    except OSError as e:
        raise Failure(f"talking to redis-server on 127.0.0.1:{port}: {e}")
    finally:
        stop(proc)
    return (f"redis: size={size} keys={keys} requests={requests} tests={TESTS} "
            f"dbsize={dbsize} digest={digest}")


def main(argv):
    if len(argv) != 1 or argv[0] not in SIZES:
        print(f"{PROG}: expected one size: {', '.join(SIZES)}", file=sys.stderr)
        return 2
    for exe in ("redis-server", "redis-benchmark"):
        if not shutil.which(exe):
            print(f"{PROG}: {exe} not found: apt-get install -y redis-server redis-tools", file=sys.stderr)
            return 2
    workdir = tempfile.mkdtemp(prefix="heapindex-redis-")
    try:
        print(run(argv[0], workdir), flush=True)
        return 0
    except Failure as e:
        try:
            with open(os.path.join(workdir, "redis.log")) as f:
                sys.stderr.write(f.read()[-2000:])
        except OSError:
            pass
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
