import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import VidrdClient
import VidrdProtocol

/// Where the gateway listens, which daemon it fronts, and its bounds.
public struct GatewaySettings: Sendable {
    public var httpHost: String
    public var httpPort: Int
    public var daemonHost: String
    public var daemonPort: UInt16
    public var token: String?
    /// Open WebSockets (each with at most one session); the next one is told the gateway is
    /// full and closed.
    public var maxViewers: Int

    /// The largest request the page sends (JSON text); larger WebSocket messages close the
    /// socket (WebSocket "message too big"), larger POST bodies get 413.
    public static let maxMessageBytes = 16 * 1024
    /// How long a refused viewer's socket stays open so that the refusal is read before the close.
    public static let refusalGraceNanoseconds: UInt64 = 1_000_000_000

    public init(httpHost: String = "127.0.0.1", httpPort: Int = 8080, daemonHost: String = "127.0.0.1", daemonPort: UInt16 = 7878,
                token: String? = nil, maxViewers: Int = 8) {
        self.httpHost = httpHost
        self.httpPort = httpPort
        self.daemonHost = daemonHost
        self.daemonPort = daemonPort
        self.token = token
        self.maxViewers = maxViewers
    }
}

/// The web viewer: `GET /` the page, `GET /api/strategies` the daemon's strategies and limits,
/// `POST /api/validate` a request checked (400 naming the field), `GET /ws` a viewer's WebSocket.
public enum Gateway {
    /// The hummingbird application; `onRunning` gets the bound port (for port 0).
    public static func application(
        _ settings: GatewaySettings, logger: Logger = Logger(label: "vidrd.viewer"), onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let viewers = ViewerCount(limit: settings.maxViewers)
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.get("/") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                     body: .init(byteBuffer: ByteBuffer(string: ViewerPage.html)))
        }
        router.get("/api/strategies") { _, _ -> Response in
            let client: VidrdClient
            do { client = try await VidrdClient.connect(host: settings.daemonHost, port: settings.daemonPort, token: settings.token) } catch {
                throw HTTPError(.badGateway, message: "cannot reach the daemon at \(settings.daemonHost):\(settings.daemonPort): \(error)")
            }
            let body = ServerDescription.json(strategies: client.strategies, info: client.serverInfo)
            await client.close()
            return json(body)
        }
        router.post("/api/validate") { request, _ -> Response in
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: GatewaySettings.maxMessageBytes) } catch {
                throw HTTPError(.contentTooLarge, message: "request body is larger than \(GatewaySettings.maxMessageBytes) bytes")
            }
            let limits: ServerLimits
            do {
                let client = try await VidrdClient.connect(host: settings.daemonHost, port: settings.daemonPort, token: settings.token)
                limits = client.serverInfo.limits
                await client.close()
            } catch {
                throw HTTPError(.badGateway, message: "cannot reach the daemon at \(settings.daemonHost):\(settings.daemonPort): \(error)")
            }
            do throws(ViewerRequestError) {
                let open = try ViewerRequest.decode(body.readableBytesView, maxBytes: GatewaySettings.maxMessageBytes).openSession(limits: limits)
                // chain null: the daemon's default chain will be used.
                let chain: Any = open.strategies.map { $0.map(\.chainText).joined(separator: ",") } ?? NSNull()
                return json(ServerDescription.encode(["ok": true, "chain": chain]))
            } catch {
                throw HTTPError(.badRequest, message: error.message)
            }
        }
        router.ws("/ws") { _, _ in .upgrade([:]) } onUpgrade: { inbound, outbound, context in
            guard viewers.enter() else {
                try? await outbound.write(.text(String(decoding: ServerDescription.encode(
                    ["type": "error", "message": "the gateway already has \(settings.maxViewers) viewers; close one and reload"]), as: UTF8.self)))
                // Closing at once races the page's first message: the refusal could then go
                // unread and the socket hang half-closed. Read (and drop) what the page sends
                // until it closes, for at most `refusalGrace`.
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { do { for try await _ in inbound.messages(maxSize: GatewaySettings.maxMessageBytes) {} } catch {} }
                    group.addTask { try? await Task.sleep(nanoseconds: GatewaySettings.refusalGraceNanoseconds) }
                    await group.next()
                    group.cancelAll()
                }
                return
            }
            defer { viewers.leave() }
            let viewer = ViewerConnection(outbound: outbound, settings: settings)
            // A message over the limit ends the iteration with an error: the socket closes and
            // the session is stopped below, nothing else is affected.
            do {
                for try await message in inbound.messages(maxSize: GatewaySettings.maxMessageBytes) {
                    guard case .text(let text) = message else {
                        try? await outbound.write(.text(#"{"type":"error","message":"send JSON text messages, not binary"}"#))
                        continue
                    }
                    await viewer.receive(text)
                }
            } catch {
                context.logger.debug("viewer socket ended: \(error)")
            }
            await viewer.stop()
        }
        // Frames are a few kB of WebP; 1 MiB bounds one WebSocket frame either way.
        let configuration = HTTP1WebSocketUpgradeChannel.Configuration(ws: .init(maxFrameSize: 1 << 20))
        return Application(
            router: router,
            server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: configuration),
            configuration: .init(address: .hostname(settings.httpHost, port: settings.httpPort), serverName: "vidrd-viewer"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? settings.httpPort) },
            logger: logger)
    }

    static func json(_ body: [UInt8]) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Open viewer sockets, bounded.
final class ViewerCount: @unchecked Sendable {
    private let lock = NSLock()
    private var open = 0
    let limit: Int
    init(limit: Int) { self.limit = max(limit, 1) }

    func enter() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard open < limit else { return false }
        open += 1
        return true
    }

    func leave() {
        lock.lock()
        open -= 1
        lock.unlock()
    }
}
