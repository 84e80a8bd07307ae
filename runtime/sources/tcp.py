"""`tcp://HOST:PORT`: framed numpy arrays from a baseband or sensor-driver process.

The runtime listens on HOST:PORT and accepts one sender; the sender's clean close (or an
end-of-stream message) ends the stream. Every message carries one array of one modality:

    offset  size  field         (little-endian)
    0       4     magic         b"BMCF"
    4       2     version       uint16 = 1
    6       2     header_len    uint16: 36 + len(modality) + len(dtype) + 4 * ndim
    8       8     frame_id      uint64: the sender's frame counter
    16      8     timestamp     float64: seconds on the sender's clock (frames align on it)
    24      1     ndim          uint8 (0..8)
    25      1     modality_len  uint8
    26      1     dtype_len     uint8
    27      1     flags         uint8: bit 0 = end of stream (no array follows)
    28      8     payload_len   uint64: bytes of the array = prod(shape) * itemsize
    36      ...   modality      ascii, e.g. "csi", "lidar", "camera", "radar"; "label", "power", "key"
            ...   dtype         numpy dtype string, little-endian or byte-sized: "<c8", "<f4", "|u1", ...
            ...   shape         ndim x uint32
            payload_len bytes   the array in C order

Frames are assembled from messages by timestamp (`beamc.runtime.align`, tolerance option
`tolerance_ms`, default 50 ms: half the ~100 ms sensing period of the DeepSense testbed), so
sensors sent by different processes line up. Send a frame's "label" (int64 [], 0-based best
beam, -1 = unknown; anything else outside the model's beams, or more than one value, is
counted "bad label" and the frame is predicted but not scored), "power" (float [B], per-beam
received power) and "key" (int64 [], sequence/user) before its sensor arrays: the frame is
emitted as soon as its sensor arrays are complete.

A malformed message (bad magic, unknown version, inconsistent lengths, a dtype or shape the
payload does not match, a timestamp that is NaN or inf) is a bad frame "malformed network frame"; when the header itself
cannot be trusted the reader skips to the next magic and the stream goes on. A connection
that closes in the middle of a message ends the run (the sender is gone).

`FrameSender` (below) is the sending side for Python drivers; `encode_frame` builds one message;
`python -m beamc.runtime.sources.tcp rec.npz HOST:PORT [--rate N]` streams a CSI recording
(label, power and csi per snapshot) to a waiting `beamc run --source tcp://HOST:PORT`.
"""

from __future__ import annotations

import math
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from beamc.errors import BeamcError
from beamc.registry import SOURCES
from beamc.runtime.align import Aligner
from beamc.runtime.frames import MALFORMED_NETWORK, BadFrame, Frame, SourceDied
from beamc.runtime.sources import Source, SourceContext

MAGIC = b"BMCF"
VERSION = 1
HEADER = struct.Struct("<4sHHQdBBBBQ")  # 36 bytes
FLAG_EOS = 1
MAX_PAYLOAD = 512 << 20
DTYPES = ("|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8", "<c8", "<c16")


def encode_frame(modality: str, array: Any, *, frame_id: int, t: float, flags: int = 0) -> bytes:
    """One message: header + array bytes (little-endian, C order)."""
    if flags & FLAG_EOS:
        return HEADER.pack(MAGIC, VERSION, HEADER.size, frame_id, t, 0, 0, 0, flags, 0)
    arr = np.ascontiguousarray(array)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    name, dtype = modality.encode("ascii"), arr.dtype.str.encode("ascii")
    dims = struct.pack(f"<{arr.ndim}I", *arr.shape)
    header_len = HEADER.size + len(name) + len(dtype) + len(dims)
    return HEADER.pack(MAGIC, VERSION, header_len, frame_id, t, arr.ndim, len(name), len(dtype), flags,
                       arr.nbytes) + name + dtype + dims + arr.tobytes()


class FrameSender:
    """Connects to a `beamc run --source tcp://HOST:PORT` and sends arrays."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection((host, port), timeout=timeout)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # the runtime may still be starting
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, modality: str, array: Any, *, frame_id: int, t: float) -> None:
        self.sock.sendall(encode_frame(modality, array, frame_id=frame_id, t=t))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self, end_of_stream: bool = True) -> None:
        try:
            if end_of_stream:
                self.sock.sendall(encode_frame("", None, frame_id=0, t=0.0, flags=FLAG_EOS))
        finally:
            self.sock.close()

    def __enter__(self) -> FrameSender:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Closed(Exception):
    def __init__(self, got: int, wanted: int):
        self.got, self.wanted = got, wanted


class _Reader:
    """Exact reads from a socket that give up when the pipeline stops."""

    def __init__(self, sock: socket.socket, stopping: Any):
        self.sock, self.stopping = sock, stopping
        self.buf = bytearray()
        self.offset = 0  # bytes consumed so far (for error messages)

    def _fill(self, n: int) -> None:
        while len(self.buf) < n:
            if self.stopping.is_set():
                raise _Closed(len(self.buf), n)
            try:
                chunk = self.sock.recv(max(65536, n - len(self.buf)))
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                raise _Closed(len(self.buf), n)
            self.buf += chunk

    def read(self, n: int) -> bytes:
        self._fill(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        self.offset += n
        return out

    def skip_to_magic(self) -> int:
        """Drop bytes up to the next MAGIC; returns how many were dropped."""
        dropped = 0
        while True:
            at = self.buf.find(MAGIC)
            if at >= 0:
                del self.buf[:at]
                self.offset += at
                return dropped + at
            keep = len(MAGIC) - 1  # a magic split across two reads
            cut = max(0, len(self.buf) - keep)
            del self.buf[:cut]
            self.offset += cut
            dropped += cut
            self._fill(len(self.buf) + 1)


@SOURCES.register("tcp")
class TcpSource(Source):
    kind, live = "tcp", True
    options_known = ("tolerance_ms", "accept_timeout_s")

    def __init__(self, target: str, options: dict[str, str], ctx: SourceContext) -> None:
        super().__init__(target, options, ctx)
        host, colon, port = target.rpartition(":")
        if not colon or not port.isdigit():
            raise BeamcError(f"source tcp: expected tcp://HOST:PORT, found tcp://{target}")
        self.aligner = Aligner(ctx.modalities, self.opt("tolerance_ms", 50.0, float) / 1e3)
        self.accept_timeout = self.opt("accept_timeout_s", 0.0, float)
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.server.bind((host or "0.0.0.0", int(port)))
        except OSError as e:
            raise BeamcError(f"source tcp: cannot listen on {host}:{port} ({e.strerror})") from None
        self.server.listen(1)
        self.server.settimeout(0.2)
        self.address = self.server.getsockname()  # port 0 -> the port the OS chose
        self.messages = 0
        self.peer: str | None = None

    def _accept(self) -> socket.socket:
        start = time.monotonic()
        while not self.stopping.is_set():
            try:
                conn, peer = self.server.accept()
            except socket.timeout:
                if self.accept_timeout and time.monotonic() - start > self.accept_timeout:
                    raise SourceDied(f"source tcp: no sender connected to {self.address[0]}:{self.address[1]} "
                                     f"within {self.accept_timeout:g} s") from None
                continue
            conn.settimeout(0.2)
            self.peer = f"{peer[0]}:{peer[1]}"
            return conn
        raise _Closed(0, 0)

    def frames(self) -> Iterator[Frame | BadFrame]:
        try:
            conn = self._accept()
        except _Closed:
            return
        reader = _Reader(conn, self.stopping)
        try:
            while True:
                try:
                    out = self._message(reader)
                except _Closed as e:
                    if self.stopping.is_set() or e.got == 0:
                        break  # stopped, or a clean close between messages
                    yield BadFrame(id=-1, reason=MALFORMED_NETWORK,
                                   message=f"connection from {self.peer} closed mid-message at byte {reader.offset} "
                                           f"({e.got} of {e.wanted} bytes)")
                    raise SourceDied(f"source tcp: the sender {self.peer} closed the connection in the middle of a "
                                     f"message (byte {reader.offset}); {self.messages} messages received") from None
                if out is None:
                    break  # end-of-stream message
                yield from out
            yield from self.aligner.flush()
        finally:
            conn.close()

    def _message(self, reader: _Reader) -> list[Frame | BadFrame] | None:
        at = reader.offset
        head = reader.read(HEADER.size)
        magic, version, header_len, frame_id, t, ndim, mlen, dlen, flags, payload_len = HEADER.unpack(head)

        def bad(message: str, fid: int = -1) -> list[Frame | BadFrame]:
            return [BadFrame(id=fid, reason=MALFORMED_NETWORK, t=t if math.isfinite(t) else 0.0,
                             message=f"tcp message at byte {at}: {message}")]

        if magic != MAGIC:
            reader.buf[:0] = head[1:]  # search from the byte after the bad start
            reader.offset -= HEADER.size - 1
            dropped = reader.skip_to_magic() + 1
            return bad(f"expected magic {MAGIC!r}, found {magic!r}; skipped {dropped} bytes to the next message")
        if flags & FLAG_EOS:
            return None
        if header_len != HEADER.size + mlen + dlen + 4 * ndim or ndim > 8 or payload_len > MAX_PAYLOAD:
            dropped = reader.skip_to_magic()
            return bad(f"inconsistent header (header_len {header_len}, ndim {ndim}, modality_len {mlen}, dtype_len {dlen}, "
                       f"payload_len {payload_len}); skipped {dropped} bytes to the next message", frame_id)
        rest = reader.read(header_len - HEADER.size)
        payload = reader.read(payload_len)
        self.messages += 1
        if version != VERSION:
            return bad(f"frame {frame_id}: version {version}, this runtime reads version {VERSION}", frame_id)
        try:
            modality = rest[:mlen].decode("ascii")
            dtype = rest[mlen:mlen + dlen].decode("ascii")
        except UnicodeDecodeError:
            return bad(f"frame {frame_id}: modality or dtype is not ASCII", frame_id)
        shape = struct.unpack(f"<{ndim}I", rest[mlen + dlen:])
        if dtype not in DTYPES:
            return bad(f"frame {frame_id} ({modality}): dtype {dtype!r} is not one of {', '.join(DTYPES)}", frame_id)
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if expected != payload_len:
            return bad(f"frame {frame_id} ({modality}): shape {list(shape)} of {dtype} is {expected} bytes, "
                       f"payload_len says {payload_len}", frame_id)
        if not math.isfinite(t):
            # the aligner orders and matches messages by time: a NaN would never match nor expire
            # and would break the alignment of every later frame
            return bad(f"frame {frame_id} ({modality}): timestamp {t}: expected a finite number of seconds", frame_id)
        array = np.frombuffer(payload, dtype=dtype).reshape(shape)
        return self.aligner.push(modality, array, int(frame_id), float(t))

    def close(self) -> None:
        self.server.close()

    def info(self) -> dict[str, Any]:
        return {"listen": f"{self.address[0]}:{self.address[1]}", "peer": self.peer, "messages": self.messages,
                "alignment": self.aligner.info()}


def send_recording(path: str, host: str, port: int, rate: float = 0.0) -> int:
    """Stream a beamc-csi/1 recording to a runtime; returns the number of snapshots sent."""
    from beamc.runtime.sources.csi import read_recording

    a = read_recording(path)
    with FrameSender(host, port) as sender:
        start = time.perf_counter()
        for i in range(len(a["csi"])):
            if rate > 0:
                time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            t = float(a["t"][i])
            if "label" in a:
                sender.send("label", a["label"][i], frame_id=i, t=t)
            if "power" in a:
                sender.send("power", a["power"][i], frame_id=i, t=t)
            if "user" in a:
                sender.send("key", a["user"][i], frame_id=i, t=t)
            sender.send("csi", a["csi"][i], frame_id=i, t=t)
    return len(a["csi"])


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Send a CSI recording to beamc run --source tcp://HOST:PORT")
    ap.add_argument("recording")
    ap.add_argument("address", help="HOST:PORT")
    ap.add_argument("--rate", type=float, default=0.0, help="snapshots per second (0: as fast as possible)")
    args = ap.parse_args()
    h, _, p = args.address.rpartition(":")
    print(f"sent {send_recording(args.recording, h or '127.0.0.1', int(p), args.rate)} snapshots")
