import ArgumentParser
import Foundation
import Hummingbird
import VidrdGateway

/// `vidrd-viewer`: the web viewer's gateway in front of a running vidrd-daemon.
@main
struct VidrdViewerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vidrd-viewer",
        abstract: "Serves the browser viewer: open http://HOST:PORT/, type a prompt, watch the endless video.",
        discussion: """
            Each browser tab gets its own daemon connection and session. Bounds: --max-viewers open tabs; \
            requests of at most 16 KiB; frames are sent at the session's fps and a tab that reads slowly holds \
            back only its own session (the daemon is 2 clips ahead at most). Listens on loopback unless --http says otherwise.
            """)

    @Option(help: "Address to serve the page on, HOST:PORT.") var http = "127.0.0.1:8080"
    @Option(help: "Daemon address HOST:PORT.") var server = "127.0.0.1:7878"
    @Option(help: "File holding the daemon's shared secret (or set VIDRD_TOKEN).") var tokenFile: String?
    @Option(help: "Most browser tabs watching at once.") var maxViewers = 8

    func validate() throws {
        _ = try split(http, "--http")
        _ = try split(server, "--server")
        if maxViewers < 1 || maxViewers > 1024 { throw ValidationError("--max-viewers must be from 1 to 1024") }
    }

    func run() async throws {
        let (httpHost, httpPort) = try split(http, "--http")
        let (daemonHost, daemonPort) = try split(server, "--server")
        var token = ProcessInfo.processInfo.environment["VIDRD_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if let tokenFile {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else { throw ValidationError("cannot read \(tokenFile)") }
            token = text.split(separator: "\n").first.map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let settings = GatewaySettings(httpHost: httpHost, httpPort: Int(httpPort), daemonHost: daemonHost, daemonPort: daemonPort,
                                       token: token, maxViewers: maxViewers)
        let app = Gateway.application(settings) { port in
            FileHandle.standardError.write(Data("vidrd-viewer: open http://\(httpHost):\(port)/ (daemon \(daemonHost):\(daemonPort))\n".utf8))
        }
        try await app.runService()
    }

    /// HOST:PORT (or [v6]:PORT) → parts; a clear usage error otherwise.
    func split(_ text: String, _ flag: String) throws -> (String, UInt16) {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("["), let close = t.firstIndex(of: "]"), t.index(after: close) < t.endIndex,
           let p = UInt16(t[t.index(close, offsetBy: 2)...]) {
            return (String(t[t.index(after: t.startIndex)..<close]), p)
        }
        guard let colon = t.lastIndex(of: ":"), let p = UInt16(t[t.index(after: colon)...]), colon != t.startIndex else {
            throw ValidationError("\(flag) must be HOST:PORT, got \(text)")
        }
        return (String(t[..<colon]), p)
    }
}
