"""An aiortc client of the SFU, written from docs/PROTOCOL.md the way an app
developer would: the seed-001 flow (auth message, join, subscribe-request
with a numeric publisherId, every subscribe-offer answered on one
RTCPeerConnection), or publishing. aiortc does not implement ICE restarts, so
it only works if the server never needs one.

Prints one JSON object per line on stdout: {"event": ...}. Bounded in time by
--seconds; exits by itself.

  aiortc_peer.py subscribe --url WS --token T --room R --publisher 42 [--cycles 20] [--prepare]
  aiortc_peer.py publish   --url WS --token T --room R --seconds 30
  aiortc_peer.py room      --url WS --token T --room R --seconds 60
"""

import argparse
import asyncio
import json
import sys
import time

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from aiortc.sdp import candidate_from_sdp
import websockets


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def drain(track):
    """Reads (decodes) a remote track until it ends, as a player would."""

    async def run():
        try:
            while True:
                await track.recv()
        except Exception:  # noqa: BLE001 - the track ended
            return

    asyncio.ensure_future(run())


async def connect(args):
    """The signaling socket, authenticated with the `auth` message, and a
    function that sends one JSON message on it."""
    ws = await websockets.connect(args.url, max_size=2**20)
    send = lambda m: ws.send(json.dumps(m))  # noqa: E731
    await send({"type": "auth", "token": args.token})
    return ws, send


async def answer_offer(pc, send, room, msg, names, offers):
    """Answers a subscribe-offer on `pc`; records its ufrag in `offers` and
    the msid of each of its sections in `names`."""
    offers.append(ufrag(msg["offer"]))
    names.clear()
    names.update(msids(msg["offer"]))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["offer"], type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await send({"type": "subscribe-answer", "roomName": room,
                "publisherId": msg.get("publisherId"), "answer": pc.localDescription.sdp})


def ufrag(sdp):
    for line in sdp.splitlines():
        if line.startswith("a=ice-ufrag:"):
            return line.split(":", 1)[1].strip()
    return None


async def add_candidate(pc, msg):
    c = msg.get("candidate")
    if not c:
        return
    text = c["candidate"] if isinstance(c, dict) else c
    if not text:
        return
    cand = candidate_from_sdp(text.split(":", 1)[1] if text.startswith("candidate:") else text)
    cand.sdpMid = c.get("sdpMid") if isinstance(c, dict) else None
    cand.sdpMLineIndex = c.get("sdpMLineIndex", 0) if isinstance(c, dict) else 0
    if cand.sdpMid is None:
        # A bare string: the first (bundled) transport.
        tr = pc.getTransceivers()
        cand.sdpMid = tr[0].mid if tr else "0"
    try:
        await pc.addIceCandidate(cand)
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        emit("candidate-error", message=str(e))


def msids(sdp):
    """mid -> msid track id of each m-section of an offer that has one."""
    out, mid, track = {}, None, None
    for line in sdp.splitlines() + ["m=end"]:
        if line.startswith("m="):
            if mid is not None and track is not None:
                out[mid] = track
            mid, track = None, None
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
        elif line.startswith("a=msid:"):
            parts = line[7:].split()
            if len(parts) > 1:
                track = parts[1]
    return out


async def inbound_by_mid(pc):
    """packetsReceived per m-section (mid) that receives."""
    out = {}
    for t in pc.getTransceivers():
        if t.mid is None or t.receiver.track is None:
            continue
        for s in (await t.receiver.getStats()).values():
            if s.type == "inbound-rtp":
                out[t.mid] = out.get(t.mid, 0) + s.packetsReceived
    return out


async def inbound(pc, names):
    """packetsReceived per msid track id, over the m-sections the last offer
    names (an unsubscribed section loses its msid and is not counted)."""
    out = {}
    for mid, n in (await inbound_by_mid(pc)).items():
        track = names.get(mid)
        if track is not None:
            out[track] = out.get(track, 0) + n
    return out


async def subscribe(args):
    pc = RTCPeerConnection()
    tracks = {}
    offers = []
    names = {}

    @pc.on("track")
    def on_track(track):
        mid = next((t.mid for t in pc.getTransceivers() if t.receiver.track is track), None)
        name = names.get(mid, "?")
        tracks[name] = track.kind
        emit("track", id=name, mid=mid, kind=track.kind)
        drain(track)

    ws, send = await connect(args)
    async with ws:
        publisher = int(args.publisher) if args.publisher.isdigit() else args.publisher
        deadline = time.monotonic() + args.seconds
        subscribed = False
        cycle_task = None
        stop = asyncio.Event()
        # With --prepare the client offers first (one data channel) and
        # subscribes once the server's answer is applied.
        ready = not args.prepare
        seen_publisher = False

        async def cycles():
            # First media on every subscribed track, then unsubscribe /
            # subscribe on the same PeerConnection: each time the media must
            # come back on a new m-section of the same tracks.
            for _ in range(300):
                now = await inbound(pc, names)
                if len(now) >= 2 and all(n > 50 for n in now.values()):
                    break
                await asyncio.sleep(0.1)
            emit("media", inbound=await inbound(pc, names))
            for i in range(args.cycles):
                old = set(await inbound_by_mid(pc))
                started = time.monotonic()
                await send({"type": "unsubscribe", "roomName": args.room, "publisherId": publisher})
                await asyncio.sleep(0.3)
                await send({"type": "subscribe-request", "roomName": args.room, "publisherId": publisher})
                ok = False
                for _ in range(200):
                    await asyncio.sleep(0.05)
                    fresh = {names.get(m): n for m, n in (await inbound_by_mid(pc)).items() if m not in old}
                    if len(fresh) >= 2 and all(n > 20 for n in fresh.values()):
                        ok = True
                        break
                emit("cycle", n=i, ok=ok, sections=len(pc.getTransceivers()),
                     seconds=round(time.monotonic() - started, 2))
                if not ok:
                    return
            emit("cycles-done")
            await asyncio.sleep(1)
            stop.set()

        async def report():
            while True:
                await asyncio.sleep(0.5)
                emit("stats", inbound=await inbound(pc, names), state=pc.connectionState)

        reporter = asyncio.ensure_future(report())
        try:
            while time.monotonic() < deadline and not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=min(0.5, max(0.1, deadline - time.monotonic())))
                except asyncio.TimeoutError:
                    continue
                msg = json.loads(raw)
                t = msg.get("type")
                if t == "auth-ok":
                    await send({"type": "join", "roomName": args.room})
                    if args.prepare:
                        pc.createDataChannel("prepare")
                        await pc.setLocalDescription(await pc.createOffer())
                        await send({"type": "subscribe-prepare", "roomName": args.room, "offer": pc.localDescription.sdp})
                elif t == "subscribe-prepare-answer":
                    offers.append(ufrag(msg["answer"]))
                    emit("prepared", ufrag=offers[-1])
                    await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["answer"], type="answer"))
                    ready = True
                    if seen_publisher and not subscribed:
                        subscribed = True
                        await send({"type": "subscribe-request", "roomName": args.room, "publisherId": publisher})
                elif t in ("joined", "new-publisher"):
                    pubs = msg.get("publishers", []) if t == "joined" else [msg]
                    if any(str(p.get("publisherId")) == str(args.publisher) for p in pubs):
                        seen_publisher = True
                    if ready and seen_publisher and not subscribed:
                        subscribed = True
                        await send({"type": "subscribe-request", "roomName": args.room, "publisherId": publisher})
                elif t == "subscribe-offer":
                    await answer_offer(pc, send, args.room, msg, names, offers)
                    emit("offer", n=len(offers), ufrag=offers[-1], tracks=msg.get("tracks"))
                    if args.cycles and cycle_task is None and len(offers) >= (3 if args.prepare else 2):
                        cycle_task = asyncio.ensure_future(cycles())
                elif t == "subscribe-ice-candidate":
                    await add_candidate(pc, msg)
                elif t == "error":
                    emit("error", message=msg.get("message"), code=msg.get("code"), requestType=msg.get("requestType"))
        finally:
            reporter.cancel()
            if cycle_task is not None:
                cycle_task.cancel()
            emit("done", inbound=await inbound(pc, names), offers=offers, tracks=tracks, state=pc.connectionState)
            await pc.close()


async def publish(args):
    pc = RTCPeerConnection()
    audio, video = AudioStreamTrack(), VideoStreamTrack()
    pc.addTrack(audio)
    pc.addTrack(video)
    emit("tracks", audio=audio.id, video=video.id)
    ws, send = await connect(args)
    async with ws:
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
            msg = json.loads(raw)
            t = msg.get("type")
            if t == "auth-ok":
                await pc.setLocalDescription(await pc.createOffer())
                await send({"type": "publish-offer", "roomName": args.room, "offer": pc.localDescription.sdp})
            elif t == "publish-answer":
                await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["answer"], type="answer"))
                emit("published")
            elif t == "publish-ice-candidate":
                await add_candidate(pc, msg)
            elif t == "error":
                emit("error", message=msg.get("message"), code=msg.get("code"))
        emit("done", state=pc.connectionState)
        await pc.close()


async def room(args):
    """Publish camera-like tracks and subscribe to every other publisher
    that appears (seed-001 style: one subscribe-request per publisher)."""
    pub = RTCPeerConnection()
    audio, video = AudioStreamTrack(), VideoStreamTrack()
    pub.addTrack(audio)
    pub.addTrack(video)
    sub = RTCPeerConnection()
    names = {}
    offers = []
    asked = set()
    emit("tracks", audio=audio.id, video=video.id)

    sub.on("track", drain)

    ws, send = await connect(args)
    async with ws:
        deadline = time.monotonic() + args.seconds
        me = None
        last_report = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() - last_report > 0.5:
                last_report = time.monotonic()
                emit("stats", inbound=await inbound(sub, names), offers=offers)
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except asyncio.TimeoutError:
                continue
            msg = json.loads(raw)
            t = msg.get("type")
            if t == "auth-ok":
                me = msg["participantId"]
                emit("auth-ok", participantId=me)
                await pub.setLocalDescription(await pub.createOffer())
                await send({"type": "publish-offer", "roomName": args.room, "offer": pub.localDescription.sdp})
            elif t in ("joined", "new-publisher"):
                pubs = msg.get("publishers", []) if t == "joined" else [msg]
                for p in pubs:
                    pid = str(p.get("publisherId"))
                    if pid != me and pid not in asked and p.get("tracks"):
                        asked.add(pid)
                        await send({"type": "subscribe-request", "roomName": args.room, "publisherId": pid})
            elif t == "publisher-left":
                asked.discard(str(msg.get("publisherId")))
            elif t == "publish-answer":
                await pub.setRemoteDescription(RTCSessionDescription(sdp=msg["answer"], type="answer"))
                emit("published")
            elif t == "publish-ice-candidate":
                await add_candidate(pub, msg)
            elif t == "subscribe-offer":
                await answer_offer(sub, send, args.room, msg, names, offers)
            elif t == "subscribe-ice-candidate":
                await add_candidate(sub, msg)
            elif t == "error":
                emit("error", message=msg.get("message"), code=msg.get("code"), requestType=msg.get("requestType"))
        emit("done", inbound=await inbound(sub, names), offers=offers)
        await pub.close()
        await sub.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["subscribe", "publish", "room"])
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--room", required=True)
    p.add_argument("--publisher", default="")
    p.add_argument("--cycles", type=int, default=0)
    p.add_argument("--prepare", action="store_true", help="subscribe-prepare first (the client offers first)")
    p.add_argument("--seconds", type=float, default=30)
    args = p.parse_args()
    run = {"subscribe": subscribe, "publish": publish, "room": room}[args.mode]
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
