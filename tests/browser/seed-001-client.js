// The seed-001 client: the smallest browser client of the protocol, the way
// an app developer writes it from the protocol page with a raw
// RTCPeerConnection: `auth` message, SDP as strings, one PeerConnection for
// publishing and one for subscribing, the server offering first (no
// subscribe-prepare), trickle ICE both ways. The publisher sends candidates
// as RTCIceCandidateInit objects, the subscriber as bare strings (both forms
// are in the contract). It is kept deliberately plain: no library.
// One addition to the plain snippet, which the protocol asks of every client:
// on `reconnect` it closes everything and starts over after `retryAfterMs`
// (at most 3 times).
//
// `config` (optional, tests only) is passed to both RTCPeerConnections, e.g.
// `{ bundlePolicy: 'max-bundle' }`, and `videoFirst` adds the camera before
// the microphone; the flow itself does not change.
window.seedClient = async function seedClient({ url, token, room, publish, config, videoFirst }) {
  const ws = new WebSocket(url);
  const log = (window.seedLog = []);
  window.seedOfferUfrags = []; // per PeerConnection: a reconnect starts a new one
  const send = (msg) => ws.send(JSON.stringify(msg));
  window.seedSend = send;
  const pubPc = publish ? new RTCPeerConnection(config) : null;
  const subPc = new RTCPeerConnection(config);
  window.seedPcs = { pubPc, subPc };
  window.seedVideo = document.createElement('video');
  window.seedVideo.autoplay = true;
  window.seedVideo.muted = true;
  document.body.appendChild(window.seedVideo);
  const remote = new MediaStream();

  subPc.ontrack = (e) => {
    if (e.streams[0] && e.streams[0].id === 'webrtc-rs') return; // probator
    remote.addTrack(e.track);
    window.seedVideo.srcObject = remote;
  };
  subPc.onicecandidate = (e) => {
    if (e.candidate) send({ type: 'subscribe-ice-candidate', roomName: room, candidate: e.candidate.candidate });
  };
  if (pubPc) {
    pubPc.onicecandidate = (e) => {
      if (e.candidate) send({ type: 'publish-ice-candidate', roomName: room, candidate: e.candidate });
    };
  }

  // Handle messages one at a time, in order.
  let chain = Promise.resolve();
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    log.push(msg.type);
    chain = chain.then(() => handle(msg)).catch((e) => { log.push(`failed: ${e}`); (window.seedFailedSdp = window.seedFailedSdp || []).push(msg.offer || msg.answer); });
  };

  async function handle(msg) {
    switch (msg.type) {
      case 'auth-ok':
        if (pubPc) {
          const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
          const tracks = stream.getTracks();
          if (videoFirst) tracks.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'video' ? -1 : 1));
          tracks.forEach((t) => pubPc.addTrack(t, stream));
          await pubPc.setLocalDescription(await pubPc.createOffer());
          send({ type: 'publish-offer', roomName: room, offer: pubPc.localDescription.sdp });
        } else {
          send({ type: 'join', roomName: room });
        }
        break;
      case 'joined':
        for (const p of msg.publishers) send({ type: 'subscribe-request', roomName: room, publisherId: p.publisherId });
        break;
      case 'publish-answer':
        await pubPc.setRemoteDescription({ type: 'answer', sdp: msg.answer });
        break;
      case 'publish-ice-candidate':
        await pubPc.addIceCandidate(msg.candidate);
        break;
      case 'new-publisher':
        send({ type: 'subscribe-request', roomName: room, publisherId: msg.publisherId });
        break;
      case 'subscribe-offer':
        (window.seedOfferUfrags = window.seedOfferUfrags || []).push((/a=ice-ufrag:(\S+)/.exec(msg.offer) || [])[1]);
        await subPc.setRemoteDescription({ type: 'offer', sdp: msg.offer });
        await subPc.setLocalDescription(await subPc.createAnswer());
        send({ type: 'subscribe-answer', roomName: room, publisherId: msg.publisherId, answer: subPc.localDescription.sdp });
        break;
      case 'subscribe-ice-candidate':
        await subPc.addIceCandidate(msg.candidate);
        break;
      case 'reconnect':
        window.seedReconnects = (window.seedReconnects || 0) + 1;
        if (window.seedReconnects > 3) break;
        ws.onmessage = null;
        ws.close();
        if (pubPc) pubPc.close();
        subPc.close();
        setTimeout(() => window.seedClient({ url, token, room, publish, config, videoFirst }), msg.retryAfterMs || 500);
        break;
      default:
        break;
    }
  }

  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('websocket failed'));
  });
  send({ type: 'auth', token });
};
