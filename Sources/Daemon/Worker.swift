import CUV
import Foundation
import VidrdMedia
import VidrdPlugins
import VidrdProtocol
import VidrdRuntime

/// One session's stream of clips. The loop hands it to one clip thread at a time with a
/// `ClipJob` (one clip in flight per session), so `stream` is never used concurrently.
final class SessionGenerator: @unchecked Sendable {
    var stream: VideoStream
    let compression: WebPCompression
    let cancelled = CancelFlag()
    /// The session's fair-queuing finish tag between clips (the step scheduler's, kept here
    /// while no clip is in flight so the session's history counts across clips).
    var finishTag: UInt64 = 0
    /// The session's share of the compute threads relative to others (OPEN_SESSION's weight).
    let weight: UInt64
    /// Seals a continuation after every clip (sessions that asked for them); nil: none.
    let sealer: ContinuationSealer?

    init(stream: VideoStream, compression: WebPCompression, weight: UInt64 = 1, sealer: ContinuationSealer? = nil) {
        self.stream = stream
        self.compression = compression
        self.weight = weight
        self.sealer = sealer
    }
}

/// What a resumable session's continuations are made of besides its stream's state.
struct ContinuationSealer: Sendable {
    let key: [UInt8]
    let model: [UInt8]
    /// The effective parameters (no credits, no continuation).
    let request: OpenSession
    /// What fits both CLIP_END in the client's max_payload and OPEN_SESSION in the server's.
    let maxBytes: Int

    /// The token for going on after the stream's last clip. Sessions are only made resumable when
    /// their state's bound fits `maxBytes` (ServerStateMachine.resumability), so an overrun is a
    /// bug in a bound and fails the clip rather than sending a token the peer cannot take.
    func seal(_ stream: VideoStream) throws -> [UInt8] {
        let token = Continuation(
            model: model, nextClipIndex: UInt32(stream.clipIndex), nextFrameNumber: UInt64(stream.framesEmitted),
            request: request, state: try stream.saveState()
        ).seal(key: key)
        guard token.count <= maxBytes else {
            throw PluginError.invalidConfiguration("continuation of \(token.count) bytes exceeds its bound of \(maxBytes)")
        }
        return token
    }
}

/// Work for one clip of one session.
struct ClipJob: Sendable {
    let sessionKey: UInt64
    let streamId: UInt32
    let clipIndex: UInt32
    let generator: SessionGenerator
    /// Encodes FRAMEs within the client's announced max_payload.
    let encoder: FrameEncoder
    let dispatchedAt: UInt64
}

/// How a clip job ended.
enum ClipOutcome: Sendable {
    case done(frames: Int, queueMicros: UInt64, denoiseMicros: UInt64, decodeMicros: UInt64, encodeMicros: UInt64, continuation: [UInt8]? = nil)
    case cancelled
    case failed(StatusCode, String)
}

/// What workers report to the loop (through the mailbox and `uv_async_send`).
enum WorkerEvent: Sendable {
    /// A PROGRESS frame, encoded.
    case progress(session: UInt64, bytes: [UInt8])
    /// A FRAME, encoded (header, prefix and WebP bytes).
    case frame(session: UInt64, bytes: [UInt8])
    case finished(session: UInt64, ClipOutcome)
}

/// Worker → loop hand-off: events are appended under a lock and the loop is woken with
/// `uv_async_send` (which coalesces; the loop drains everything each time).
final class Mailbox: @unchecked Sendable {
    private let events = Locked<[WorkerEvent]>([])
    private let async: UnsafeMutablePointer<uv_async_t>

    init(async: UnsafeMutablePointer<uv_async_t>) { self.async = async }

    func post(_ event: WorkerEvent) {
        events.withLock { $0.append(event) }
        uv_async_send(async)
    }

    func drain() -> [WorkerEvent] {
        events.withLock { e in
            let out = e
            e.removeAll(keepingCapacity: true)
            return out
        }
    }
}

/// Runs one clip: denoise and decode through the session's `VideoStream`, then WebP-encode
/// each frame and hand it to the loop as soon as it is ready.
enum ClipRunner {
    static func run(_ job: ClipJob, steps: SessionSteps, post: (WorkerEvent) -> Void) {
        let key = job.sessionKey
        let gen = job.generator
        let started = MonotonicClock.nanoseconds
        let queueMicros = (started &- job.dispatchedAt) / 1000
        var lastStep = started
        func progress(_ phase: VidrdProtocol.Progress.Phase, _ step: Int, _ total: Int) {
            let message = Message.progress(
                VidrdProtocol.Progress(clipIndex: job.clipIndex, phase: phase, step: UInt32(step), total: UInt32(max(total, 1))))
            if let bytes = try? job.encoder.encode(message, stream: job.streamId) {
                post(.progress(session: key, bytes: bytes))
            }
        }
        do {
            if gen.cancelled.isSet { throw ModelError.cancelled }
            let clip = try gen.stream.nextClip { p in
                lastStep = MonotonicClock.nanoseconds
                progress(.denoise, p.step, p.totalSteps)
                if p.step == p.totalSteps { progress(.decode, 0, 1) }
                return !gen.cancelled.isSet
            }
            let decoded = MonotonicClock.nanoseconds
            let n = clip.frames.shape[0]
            guard n > 0 else {
                post(.finished(session: key, .failed(.internal, "clip \(job.clipIndex) emitted no frames")))
                return
            }
            let (h, w) = (clip.frames.shape[1], clip.frames.shape[2])
            let per = h * w * 3
            progress(.decode, 1, 1)
            for i in 0..<n {
                if gen.cancelled.isSet {
                    post(.finished(session: key, .cancelled))
                    return
                }
                let image = RGBImage(width: w, height: h, unitFloats: clip.frames.scalars[(i * per)..<((i + 1) * per)])
                let compression = gen.compression
                let webp = try steps.solo(cost: StepCost.encode(pixels: w * h)) { try WebP.encode(image, compression: compression) }
                let number = UInt64(clip.firstFrameNumber) + UInt64(i)
                var bytes: [UInt8]
                do {
                    bytes = try job.encoder.frameHead(
                        stream: job.streamId, clipIndex: job.clipIndex, frameIndex: UInt32(i), frameNumber: number,
                        webpHead: webp.prefix(12), webpCount: webp.count)
                } catch {
                    let e = error as Error as? ProtocolError
                    let tooLarge = e?.kind == .payloadTooLarge || e?.kind == .frameTooLarge
                    post(.finished(session: key, .failed(tooLarge ? .resourceExhausted : .internal,
                        "frame \(number): a \(webp.count)-byte WebP does not fit: \(e?.message ?? "\(error)")")))
                    return
                }
                bytes.append(contentsOf: webp)
                post(.frame(session: key, bytes: bytes))
            }
            let done = MonotonicClock.nanoseconds
            let continuation: [UInt8]?
            do {
                continuation = try gen.sealer.map { try $0.seal(gen.stream) }
            } catch {
                post(.finished(session: key, .failed(.internal, "clip \(job.clipIndex): no continuation: \(error)")))
                return
            }
            post(
                .finished(
                    session: key,
                    .done(
                        frames: n, queueMicros: queueMicros, denoiseMicros: (lastStep &- started) / 1000,
                        decodeMicros: (decoded &- lastStep) / 1000, encodeMicros: (done &- decoded) / 1000,
                        continuation: continuation)))
        } catch ModelError.cancelled {
            post(.finished(session: key, .cancelled))
        } catch {
            post(.finished(session: key, .failed(.internal, "generation failed: \(error)")))
        }
    }
}
