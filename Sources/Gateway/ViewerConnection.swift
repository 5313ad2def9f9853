import Foundation
import Hummingbird
import HummingbirdWebSocket
import VidrdClient
import VidrdProtocol

/// One browser tab's WebSocket: at most one daemon session at a time, on its own daemon
/// connection, so viewers never share or stall each other's sessions.
///
/// Page → gateway (text): `{"type":"start", "prompt":…, "chain":…, "seed":…, …}` or
/// `{"type":"stop"}`. Gateway → page: text events `opened`, `clip`, `progress`, `clipEnd`,
/// `stopped`, `ended`, `error`, each carrying `run` (which start it belongs to), and one binary
/// message per frame: 8 bytes frame number, 4 bytes clip index (big-endian), then the WebP.
actor ViewerConnection {
    private let outbound: WebSocketOutboundWriter
    private let settings: GatewaySettings
    private var current: Task<Void, Never>?
    private var run = 0

    init(outbound: WebSocketOutboundWriter, settings: GatewaySettings) {
        self.outbound = outbound
        self.settings = settings
    }

    /// One text message from the page. Anything unusable is answered with an `error` event
    /// naming what was wrong; the connection and any running session carry on.
    func receive(_ text: String) async {
        guard let data = text.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let type = object["type"] as? String
        else {
            await send(["type": "error", "message": "message is not a JSON object with a \"type\""])
            return
        }
        switch type {
        case "start":
            let request: ViewerRequest
            do throws(ViewerRequestError) { request = try ViewerRequest.decode(Array(text.utf8), maxBytes: GatewaySettings.maxMessageBytes) } catch {
                await send(["type": "error", "message": error.message])
                return
            }
            await start(request)
        case "stop":
            await stop()
        default:
            await send(["type": "error", "message": "unknown message type \"\(type)\" (start or stop)"])
        }
    }

    /// Ends the running session (CANCEL to the daemon) and waits until it is gone, so a
    /// restart never has two sessions of one viewer alive at once.
    func stop() async {
        guard let task = current else { return }
        current = nil
        task.cancel()
        await task.value
        await send(["type": "stopped", "run": run])
    }

    private func start(_ request: ViewerRequest) async {
        await stop()
        run += 1
        let run = self.run
        let settings = self.settings
        let outbound = self.outbound
        current = Task { await ViewerConnection.stream(request, run: run, settings: settings, outbound: outbound) }
    }

    private func send(_ event: [String: Any]) async {
        try? await outbound.write(.text(String(decoding: ServerDescription.encode(event), as: UTF8.self)))
    }

    /// Opens the session and forwards it, frames paced at the session's fps: the page draws a
    /// frame as it arrives, and a gateway that waits for each frame's slot consumes clips only
    /// as fast as they play, so the client library's credits (2 clips ahead) hold the daemon
    /// back instead of frames piling up in the gateway or the page.
    static func stream(_ request: ViewerRequest, run: Int, settings: GatewaySettings, outbound: WebSocketOutboundWriter) async {
        func send(_ event: [String: Any]) async throws {
            var e = event
            e["run"] = run
            try await outbound.write(.text(String(decoding: ServerDescription.encode(e), as: UTF8.self)))
        }
        var client: VidrdClient?
        do {
            let c = try await VidrdClient.connect(host: settings.daemonHost, port: settings.daemonPort, token: settings.token)
            client = c
            let open: OpenSession
            do throws(ViewerRequestError) { open = try request.openSession(limits: c.serverInfo.limits) } catch {
                try await send(["type": "error", "message": error.message])
                await c.close()
                return
            }
            let session = try await c.openSession(open, prefetch: 2)
            let p = session.parameters
            try await send([
                "type": "opened", "session": session.id, "width": p.width, "height": p.height, "fps": p.fps, "seed": String(p.seed),
                "steps": p.steps, "frames": p.framesPerClip, "chain": p.strategies.map(\.chainText).joined(separator: ","),
            ])
            let interval = Duration.seconds(1 / max(p.fps, 0.1))
            let clock = ContinuousClock()
            var slot = clock.now
            for try await event in session {
                switch event {
                case .clipStarted(let s):
                    try await send(["type": "clip", "clip": s.clipIndex, "firstFrame": s.firstFrameNumber, "frames": s.frameCount])
                case .progress(let pr):
                    try await send(["type": "progress", "clip": pr.clipIndex, "phase": "\(pr.phase)", "step": pr.step, "total": pr.total])
                case .frame(let f):
                    try await clock.sleep(until: slot)
                    slot = max(clock.now, slot) + interval
                    var buffer = ByteBuffer()
                    buffer.reserveCapacity(12 + f.webp.count)
                    buffer.writeInteger(f.frameNumber, endianness: .big)
                    buffer.writeInteger(f.clipIndex, endianness: .big)
                    buffer.writeBytes(f.webp)
                    try await outbound.write(.binary(buffer))
                case .clipEnded(let e):
                    try await send(["type": "clipEnd", "clip": e.clipIndex, "frames": e.frameCount, "totalMs": Double(e.totalMicros) / 1000])
                }
            }
            if !Task.isCancelled { try await send(["type": "ended"]) }
        } catch is CancellationError {
            // stop or restart: the session was cancelled by the task's cancellation.
        } catch let e as VidrdError {
            try? await send(["type": "error", "message": "\(e)"])
        } catch {
            // The WebSocket is gone (the tab closed): nothing left to tell.
        }
        await client?.close()
    }
}
