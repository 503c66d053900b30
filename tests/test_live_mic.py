"""The mic-driven avatar: the streaming viseme estimator and the session lifecycle over the
WebSocket transport (FastAPI's TestClient, in process, no network)."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest

from pipeline.visemes.streaming import LOOKAHEAD, StreamingVisemes, channel

SR = 16000
FPS = 25.0
GAP, JAW = channel("gap"), channel("jaw")


def noise(seconds: float, level: float = 1e-3, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * level).astype(np.float32)


def vowel(seconds: float, f0: float = 120.0, formants=(750.0, 1250.0, 2600.0), amp: float = 0.3) -> np.ndarray:
    """A sung /a/: harmonics of f0 weighted by formant resonances, with 20 ms ramps."""
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for k in range(1, int(4000 / f0)):
        f = k * f0
        gain = sum(1.0 / (1.0 + ((f - fm) / 90.0) ** 2) for fm in formants)
        x += gain * np.sin(2 * np.pi * f * t)
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return (amp * x / np.abs(x).max() * ramp).astype(np.float32)


def poses(x: np.ndarray, block: int = 320) -> np.ndarray:
    est = StreamingVisemes(FPS)
    out = []
    for i in range(0, len(x), block):
        out += est.push(x[i : i + block])
    return np.array(out)


def frame_times(n: int) -> np.ndarray:
    return np.arange(n) / FPS


# ---------------------------------------------------------------------------- estimator


def test_silence_keeps_the_lips_closed():
    p = poses(np.concatenate([np.zeros(SR // 2, np.float32), noise(1.5, 3e-3)]))
    assert len(p) >= 45
    assert np.all(p[:, GAP] == 0.0) and np.all(p[:, JAW] <= 0.05)


def test_a_vowel_opens_the_mouth_and_silence_after_it_closes_it():
    x = np.concatenate([noise(1.0), noise(0.5) + vowel(0.5), noise(0.8)])
    p = poses(x)
    t = frame_times(len(p))
    during = (t > 1.1) & (t < 1.4)
    before = t < 0.95
    after = t > 1.7
    assert p[during, GAP].min() > 0.3 and p[during, JAW].min() > 0.3
    assert p[before, GAP].max() == 0.0
    assert p[after, GAP].max() == 0.0
    # the opening starts within about two frames of the vowel's onset (no late mouth)
    first_open = t[np.flatnonzero(p[:, GAP] > 0.1)[0]]
    assert 0.95 <= first_open <= 1.08


def test_speech_opens_on_vowels_and_closes_in_pauses(speech):
    from pipeline.phones import classify
    from pipeline.visemes.acoustic import samples_16k

    voice = samples_16k(speech.audio)
    voice = voice + noise(len(voice) / SR + 0.01, seed=1)[: len(voice)]
    x = np.concatenate([noise(0.5), voice, noise(0.6, seed=2)])
    p = poses(x)
    t = frame_times(len(p)) - 0.5  # speech time

    def kind(tt: float) -> str:
        for ph in speech.phonemes:
            if ph.start <= tt < ph.end:
                return classify(ph.symbol).kind
        return "pause"

    kinds = np.array([kind(tt + 0.5 / FPS) for tt in t])
    vowels = kinds == "vowel"
    assert vowels.sum() >= 10
    assert np.mean(p[vowels, GAP] > 0.25) > 0.85  # vowels show an open mouth
    outside = (t < -0.1) | (t > speech.duration + 0.2)
    assert np.all(p[outside, GAP] == 0.0)  # silence before and after: closed


def test_look_ahead_is_bounded_and_frames_come_as_soon_as_it_allows():
    est = StreamingVisemes(FPS)
    assert 0.04 <= est.lookahead <= LOOKAHEAD <= 0.06
    x = np.concatenate([noise(0.6), vowel(0.6), noise(0.6)])
    n = 0
    for i in range(0, len(x), 123):  # odd block sizes
        n += len(est.push(x[i : i + 123]))
        have = min(i + 123, len(x))
        assert n == est.frames_ready(have)
        # every frame whose time plus the look-ahead has been heard is out (none waits longer)
        due = int(np.floor((have / SR - est.lookahead) * FPS + 1e-9)) + 1 if have / SR >= est.lookahead else 0
        assert n >= due
    assert n == est.frames_out


def test_a_frame_never_depends_on_audio_past_its_look_ahead():
    base = np.concatenate([noise(0.6), vowel(0.3)])
    cut = len(base) / SR
    quiet = poses(np.concatenate([base, noise(0.5, seed=3)]))
    loud = poses(np.concatenate([base, vowel(0.5, f0=180.0, formants=(300.0, 800.0, 2300.0), amp=0.6)]))
    final = int(np.floor((cut - StreamingVisemes(FPS).lookahead) * FPS)) + 1  # frames whose audio is all in base
    assert final >= 20
    np.testing.assert_array_equal(quiet[:final], loud[:final])
    assert not np.array_equal(quiet[final + 3 :], loud[final + 3 : len(quiet)])  # the rest does see it


def test_block_size_does_not_change_the_poses():
    x = np.concatenate([noise(0.4), vowel(0.4), noise(0.3)])
    np.testing.assert_allclose(poses(x, 320), poses(x, 1777), atol=1e-6)


# ---------------------------------------------------------------------------- sessions


@pytest.fixture(scope="module")
def client():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    import pipeline

    app = FastAPI()
    app.include_router(pipeline.mic_router())
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def mirrored(avatar):
    import pipeline

    return pipeline.prepare_avatar(np.ascontiguousarray(avatar.image[:, ::-1]), name="mirrored")


def pcm_message(x: np.ndarray, stamp: float) -> bytes:
    return struct.pack("<d", stamp) + (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def frames_from(ws, want: int, timeout: float = 20.0) -> tuple[list[tuple], list[dict]]:
    from pipeline.live.mic import HEADER

    frames, texts = [], []
    deadline = time.monotonic() + timeout
    while len(frames) < want and time.monotonic() < deadline:
        msg = ws.receive()
        if msg.get("bytes") is not None:
            data = msg["bytes"]
            frames.append((HEADER.unpack_from(data), data[HEADER.size :]))
        elif msg.get("text") is not None:
            import json

            texts.append(json.loads(msg["text"]))
        else:
            break
    return frames, texts


def decode(jpeg: bytes) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def wait_until(cond, seconds: float = 1.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_frames_arrive_with_latency_and_the_slot_is_freed_on_close(client, avatar):
    import pipeline
    from pipeline.live import LIMITER, mic

    base = LIMITER.active
    token = pipeline.offer_mic_session(avatar, owner="tab-a")
    assert LIMITER.active == base + 1
    x = np.concatenate([noise(0.3), vowel(0.6), noise(0.5)])
    with client.websocket_connect(f"/live/mic/ws/{token}") as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["fps"] == FPS and ready["lookahead_ms"] <= 60
        for i in range(0, len(x), 320):  # paced like a microphone, 20 ms blocks
            ws.send_bytes(pcm_message(x[i : i + 320], 1000.0 * i / SR))
            time.sleep(0.02)
        frames, texts = frames_from(ws, 25)
        assert len(frames) == 25
        (kind, _, x0, y0, _, index, latency_ms, stamp), jpeg = frames[0]
        assert kind == 0 and (x0, y0) == (0, 0) and index == 0
        assert decode(jpeg).shape[:2] == (ready["height"], ready["width"])
        assert [f[0][5] for f in frames] == list(range(25))
        lat = np.array([f[0][6] for f in frames])
        assert np.all(lat > 0) and np.median(lat) < 150
        stats = [t for t in texts if t["type"] == "stats"]
        assert stats and stats[-1]["latency_ms"] > 0
        patches = [f for f in frames[1:] if f[1]]
        assert patches and all(f[0][0] == 1 for f in patches)
        assert np.mean([len(f[1]) for f in patches]) < 0.3 * len(jpeg)  # only the changed part travels
        assert mic.active_sessions() == 1
    assert wait_until(lambda: LIMITER.active == base and mic.active_sessions() == 0, 1.0)


def test_metrics_export_the_latency(client, avatar):
    from prometheus_client import REGISTRY

    import pipeline

    token = pipeline.offer_mic_session(avatar, owner="tab-m")
    before = REGISTRY.get_sample_value("avatar_studio_live_mic_latency_seconds_count") or 0.0
    with client.websocket_connect(f"/live/mic/ws/{token}") as ws:
        ws.receive_json()
        x = noise(0.5)
        for i in range(0, len(x), 320):
            ws.send_bytes(pcm_message(x[i : i + 320], 1.0))
            time.sleep(0.01)
        frames, _ = frames_from(ws, 5)
    assert len(frames) == 5
    assert REGISTRY.get_sample_value("avatar_studio_live_mic_latency_seconds_count") >= before + 5
    from prometheus_client.parser import text_string_to_metric_families

    page = client.get("/live/mic/metrics")
    assert page.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(page.text)}
    assert {"avatar_studio_live_mic_latency_seconds", "avatar_studio_live_mic_frames",
            "avatar_studio_live_mic_sessions"} <= set(families)
    assert all(name.startswith("avatar_studio_live_mic_") for name in families)  # only the mic's own
    count = [s.value for s in families["avatar_studio_live_mic_latency_seconds"].samples if s.name.endswith("_count")]
    assert count and count[0] >= before + 5


def test_two_tabs_never_mix(client, avatar, mirrored):
    import pipeline

    ta = pipeline.offer_mic_session(avatar, owner="tab-1")
    tb = pipeline.offer_mic_session(mirrored, owner="tab-2")
    assert ta != tb
    with client.websocket_connect(f"/live/mic/ws/{ta}") as wa, client.websocket_connect(f"/live/mic/ws/{tb}") as wb:
        wa.receive_json(), wb.receive_json()
        wa.send_bytes(pcm_message(noise(0.2) + vowel(0.2), 5.0))
        wb.send_bytes(pcm_message(noise(0.2), 7.0))
        fa, _ = frames_from(wa, 3)
        fb, _ = frames_from(wb, 3)
    ka, kb = decode(fa[0][1]).astype(float), decode(fb[0][1]).astype(float)
    own_a = np.abs(ka - avatar.image[: ka.shape[0], : ka.shape[1]]).mean()
    own_b = np.abs(kb - mirrored.image[: kb.shape[0], : kb.shape[1]]).mean()
    cross = np.abs(kb - avatar.image[: kb.shape[0], : kb.shape[1]]).mean()
    assert own_a < 8 and own_b < 8 and cross > 2 * own_b
    assert {f[0][7] for f in fa} == {5.0} and {f[0][7] for f in fb} == {7.0}  # each gets its own audio's stamps


def test_stop_message_and_stop_by_owner_end_the_session(client, avatar):
    import pipeline
    from pipeline.live import LIMITER, mic

    base = LIMITER.active
    token = pipeline.offer_mic_session(avatar, owner="tab-s")
    with client.websocket_connect(f"/live/mic/ws/{token}") as ws:
        ws.receive_json()
        ws.send_text('{"type": "stop"}')
        assert wait_until(lambda: LIMITER.active == base, 1.0)
    token = pipeline.offer_mic_session(avatar, owner="tab-s")
    with client.websocket_connect(f"/live/mic/ws/{token}") as ws:
        ws.receive_json()
        assert mic.active_sessions() == 1
        assert pipeline.stop_mic_sessions("tab-s") == 1
        assert LIMITER.active == base and mic.active_sessions() == 0
        kinds = []
        for _ in range(20):  # the server closes the socket at once
            msg = ws.receive()
            kinds.append(msg["type"])
            if msg["type"] == "websocket.close":
                break
        assert kinds[-1] == "websocket.close"


def test_a_backlog_merges_into_one_frame_that_brings_the_page_up_to_date(avatar, monkeypatch):
    from pipeline.live import mic

    monkeypatch.setattr(mic, "LATE_S", 1e9)  # render every frame, however long this machine takes
    session = mic.MicSession(avatar, mic.MicOptions(jpeg_quality=95))
    try:
        x = np.concatenate([noise(0.3), vowel(0.5), noise(0.3)])
        frames = session.feed((x * 32767).astype(np.int16), time.perf_counter())
        assert len(frames) >= 20 and frames[0].key
        page = decode(frames[0].data).astype(float)  # what the page shows after the keyframe
        noise_floor = np.abs(page - frames[0].image).mean()  # JPEG's own error
        backlog = frames[1:14]  # up to the middle of the vowel: the mouth is open there
        merged = mic.merge(backlog, 95)
        x0, y0 = merged.x, merged.y
        patch = decode(merged.data)
        assert patch.shape[0] < page.shape[0] / 2  # a rectangle, not the whole frame
        page[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]] = patch
        assert merged.index == backlog[-1].index
        target = backlog[-1].image
        assert np.abs(frames[0].image.astype(float) - target).mean() > 0.05  # the mouth did move
        assert np.abs(page - target).mean() <= noise_floor + 0.2  # the page now shows the last frame
    finally:
        session.close()


def test_a_stalled_session_skips_late_frames_and_catches_up(avatar):
    from pipeline.live import mic

    session = mic.MicSession(avatar)
    try:
        x = (np.concatenate([noise(0.3), vowel(0.5)]) * 32767).astype(np.int16)
        long_ago = time.perf_counter() - 1.0  # as if these blocks had waited a second in the queue
        blocks = [(x[i : i + 320], long_ago, 0.0) for i in range(0, len(x), 320)]
        frames = session.feed_blocks(blocks)
        assert len(frames) == 1 and session.skipped == session.visemes.frames_out - 1 >= 15
        assert frames[0].index == session.visemes.frames_out - 1  # only the newest is rendered
        fresh = session.feed_blocks([(x[:640], time.perf_counter(), 0.0)])
        assert len(fresh) == session.visemes.frames_out - 1 - frames[0].index  # on time again: all rendered
    finally:
        session.close()


def test_pressing_start_twice_holds_one_slot(avatar):
    import pipeline
    from pipeline.live import LIMITER

    base = LIMITER.active
    pipeline.offer_mic_session(avatar, owner="tab-twice")
    pipeline.offer_mic_session(avatar, owner="tab-twice")
    assert LIMITER.active == base + 1
    assert pipeline.stop_mic_sessions("tab-twice") == 1
    assert LIMITER.active == base


def test_unknown_or_reused_tokens_get_a_clear_error(client, avatar):
    import pipeline

    with client.websocket_connect("/live/mic/ws/not-a-token") as ws:
        err = ws.receive_json()
    assert err["type"] == "error" and err["code"] == "live_session_not_found" and "Start microphone" in err["message"]
    token = pipeline.offer_mic_session(avatar, owner="tab-r")
    with client.websocket_connect(f"/live/mic/ws/{token}") as ws:
        assert ws.receive_json()["type"] == "ready"
        with client.websocket_connect(f"/live/mic/ws/{token}") as again:
            assert again.receive_json()["code"] == "live_session_not_found"


def test_the_session_limit_refuses_with_a_message(avatar, monkeypatch):
    import pipeline
    from pipeline.live import LIMITER, TooManySessions

    monkeypatch.setattr(LIMITER, "limit", LIMITER.active + 1)
    pipeline.offer_mic_session(avatar, owner="tab-x")
    with pytest.raises(TooManySessions, match="live session"):
        pipeline.offer_mic_session(avatar, owner="tab-y")
    assert pipeline.stop_mic_sessions("tab-x") == 1


def test_an_unclaimed_offer_gives_its_slot_back(avatar, monkeypatch):
    import pipeline
    from pipeline.live import LIMITER, mic

    base = LIMITER.active
    monkeypatch.setattr(mic, "OFFER_TTL_S", 0.05)
    token = pipeline.offer_mic_session(avatar, owner="tab-late")
    time.sleep(0.1)
    with pytest.raises(mic.SessionNotFound):
        mic.claim(token)
    assert LIMITER.active == base
