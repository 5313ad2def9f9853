import Foundation
import HummingbirdWSClient
import Logging
import Testing

/// What one viewer socket received: the text events (JSON) and the frames.
struct ViewerLog: Sendable {
    var events: [String] = []
    var frames: [(number: UInt64, clip: UInt32, webp: [UInt8])] = []

    func events(_ type: String) -> [[String: Any]] {
        events.compactMap(jsonObject).filter { $0["type"] as? String == type }
    }
}

/// Runs `body` with a deadline; a test that would hang fails instead.
func withDeadline<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            throw GatewayTestError("no result within \(seconds) s")
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw GatewayTestError("no result") }
        return first
    }
}

/// Opens `ws://127.0.0.1:port/ws`, sends the first of `messages`, and each next one when an
/// `error` or `opened` event answers the previous one, then reads. Once `frames` frames have
/// arrived it calls `whilePlaying` and sends `stop`; it returns after that `stop`'s `stopped`, after `ended`, after
/// an `error` when `untilError`, or when the gateway closes the socket.
func watch(
    port: Int, send messages: [String], frames: Int, untilError: Bool = true, whilePlaying: @escaping @Sendable () async -> Void = {}
) async throws -> ViewerLog {
    let log = Box(ViewerLog())
    try await withDeadline(60) {
        _ = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/ws", logger: Logger(label: "viewer.test")) { inbound, outbound, _ in
            var pending = messages[...]
            if let first = pending.popFirst() { try await outbound.write(.text(first)) }
            var stopSent = false
            for try await message in inbound.messages(maxSize: 1 << 20) {
                switch message {
                case .text(let text):
                    log.with { $0.events.append(text) }
                    let type = jsonObject(text)?["type"] as? String
                    if type == "error" || type == "opened", let next = pending.popFirst() {
                        try await outbound.write(.text(next))
                        continue
                    }
                    if (type == "stopped" && stopSent) || type == "ended" || (type == "error" && untilError) { return }
                case .binary(var buffer):
                    guard let number: UInt64 = buffer.readInteger(endianness: .big), let clip: UInt32 = buffer.readInteger(endianness: .big),
                          let webp = buffer.readBytes(length: buffer.readableBytes)
                    else { throw GatewayTestError("a binary message shorter than its 12-byte header") }
                    let count = log.with { l -> Int in
                        l.frames.append((number, clip, webp))
                        return l.frames.count
                    }
                    if count >= frames, !stopSent {
                        stopSent = true
                        await whilePlaying()
                        try await outbound.write(.text(#"{"type":"stop"}"#))
                    }
                }
            }
        }
    }
    return log.with { $0 }
}
