import Foundation
import Testing
import VidrdProtocol

/// Ties docs/PROTOCOL.md to the implementation: the worked examples must be byte-exact, and the
/// tables must list every frame type and status code with the implementation's values.
@Suite("PROTOCOL.md")
struct DocExampleTests {
    static func protocolDoc() throws -> String {
        // Walk up from this file (and from its symlink-resolved path) to the repository's docs/.
        let here = URL(fileURLWithPath: #filePath)
        for start in [here, here.resolvingSymlinksInPath()] {
            var dir = start.deletingLastPathComponent()
            for _ in 0..<6 {
                let candidate = dir.appendingPathComponent("docs/PROTOCOL.md")
                if FileManager.default.fileExists(atPath: candidate.path) {
                    return try String(contentsOf: candidate, encoding: .utf8)
                }
                dir = dir.deletingLastPathComponent()
            }
        }
        throw CocoaError(.fileNoSuchFile)
    }

    /// The bytes of the code block after `<!-- hex:NAME -->`; text after `#` on a line is a comment.
    static func hexBlock(_ name: String, in doc: String) throws -> [UInt8] {
        let marker = "<!-- hex:\(name) -->"
        let afterMarker = try #require(doc.range(of: marker), "no example \(name)").upperBound
        let lines = doc[afterMarker...].split(separator: "\n", omittingEmptySubsequences: false).dropFirst()
        #expect(lines.first?.hasPrefix("```") == true, "example \(name) must be a fenced block")
        var bytes: [UInt8] = []
        for line in lines.dropFirst() {
            if line.hasPrefix("```") { return bytes }
            let data = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            for token in data.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
                let byte = try #require(token.count == 2 ? UInt8(token, radix: 16) : nil, "bad hex token \(token) in \(name)")
                bytes.append(byte)
            }
        }
        Issue.record("example \(name) is not terminated")
        return bytes
    }

    static let fnrHalf = StrategySpec(name: "fnr", params: [StrategyParam("alpha", .double(0.5))])

    static let examples: [(name: String, preface: Bool, envelope: Envelope)] = [
        ("hello", true, Envelope(message: .hello(Hello(minVersion: 1, maxVersion: 1, token: Array("s3cret".utf8), clientName: "py/1")))),
        (
            "hello-ack", true,
            Envelope(
                message: .helloAck(
                    HelloAck(
                        version: 1,
                        info: ServerInfo(serverName: "vidrd", modelName: "tiny", limits: .defaults, activeConnections: 1, uptimeMs: 1500),
                        strategies: StrategyList(
                            strategies: [
                                StrategyDescriptor(
                                    name: "fnr",
                                    params: [ParamDescriptor(name: "alpha", defaultValue: .double(0.5), minimum: 0, maximum: 1)])
                            ],
                            defaultChain: [fnrHalf])))
            )
        ),
        ("error", false, Envelope(message: .error(ErrorMessage(code: .unauthenticated, message: "bad token", fatal: true)))),
        (
            "open-session", false,
            Envelope(
                stream: 1,
                message: .openSession(
                    OpenSession(
                        prompt: "a red fox", seed: 42, steps: 25,
                        strategies: [StrategySpec(name: "fnr", params: [StrategyParam("alpha", .double(0.25))])],
                        webpQuality: 90, initialCredits: 2)))
        ),
        ("pull", false, Envelope(stream: 1, message: .pull(credits: 1))),
        (
            "frame", false,
            Envelope(stream: 1, message: .frame(VideoFrame(clipIndex: 3, frameIndex: 5, frameNumber: 197, webp: Samples.webp1x1)))
        ),
    ]

    @Test("worked examples equal the encoder's bytes and decode back", arguments: 0..<6)
    func workedExample(_ i: Int) throws {
        let doc = try Self.protocolDoc()
        let (name, preface, envelope) = Self.examples[i]
        let documented = try Self.hexBlock(name, in: doc)
        let encoded = (preface ? ConnectionPreface.bytes : []) + (try FrameEncoder(role: nil).encode(envelope))
        #expect(documented == encoded, "docs/PROTOCOL.md example \(name) differs from the encoder")
        var decoder = FrameDecoder(role: nil, expectPreface: preface)
        decoder.append(documented)
        #expect(try decoder.nextMessage() == envelope)
        #expect(try decoder.nextMessage() == nil)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test("the preface, the version and the limit defaults are documented")
    func constants() throws {
        let doc = try Self.protocolDoc()
        #expect(doc.contains("56 49 44 52 44 50 0d 0a"))
        #expect(doc.contains("protocol version \(VidrdProtocolVersion.current)"))
        // The hello-ack example encodes ServerLimits.defaults; the tables spell the numbers out.
        for text in ["4 194 304", "65 536 ..= 67 108 864", "15 000", "60 000", "10 000"] {
            #expect(doc.contains(text), "missing \(text)")
        }
    }

    @Test("every frame type is in the §5 table with its code")
    func frameTypes() throws {
        let doc = try Self.protocolDoc()
        for t in FrameType.allCases {
            let code = String(t.rawValue, radix: 16, uppercase: true)
            let row = "| 0x\(code.count == 1 ? "0" + code : code) | `\(t.name)`"
            #expect(doc.contains(row), "missing row \(row)")
        }
    }

    @Test("every status code is in the §7 table with its value")
    func statusCodes() throws {
        let doc = try Self.protocolDoc()
        for c in StatusCode.allCases {
            let value = String(c.rawValue)
            let row = "| \(value)\(String(repeating: " ", count: max(1, 5 - value.count)))| `\(c.name)`"
            #expect(doc.contains(row), "missing row \(row)")
        }
    }
}
