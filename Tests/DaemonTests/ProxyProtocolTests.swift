import Foundation
import Testing
import VidrdProtocol

@testable import VidrdClient
@testable import VidrdDaemon

/// A PROXY protocol v2 header as HAProxy's `send-proxy-v2` writes it (PROXY command, TCP over IPv4).
func proxyV2Header(source: (UInt8, UInt8, UInt8, UInt8), port: UInt16, tlvs: [UInt8] = []) -> [UInt8] {
    let body: [UInt8] = [source.0, source.1, source.2, source.3, 127, 0, 0, 1, UInt8(port >> 8), UInt8(port & 0xFF), 0x1E, 0xC6] + tlvs
    return ProxyHeader.signature + [0x21, 0x11, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
}

extension DaemonSuite {
    @Suite("PROXY protocol v2 (proxy_protocol)")
    struct ProxyProtocolTests {
        @Test("ProxyHeader: IPv4, IPv6, LOCAL, split input, v1 text, no header, oversized")
        func parsing() {
            let v4 = proxyV2Header(source: (203, 0, 113, 7), port: 4242, tlvs: [0x05, 0x00, 0x02, 0xAB, 0xCD])
            #expect(ProxyHeader.parse(v4 + [1, 2, 3]) == .proxied(source: "203.0.113.7:4242", consumed: v4.count))
            for cut in [1, 12, 15, 16, v4.count - 1] {
                #expect(ProxyHeader.parse(Array(v4.prefix(cut))) == .incomplete, "\(cut) bytes")
            }
            var v6Body = [UInt8](repeating: 0, count: 36)
            v6Body[0] = 0x20; v6Body[1] = 0x01; v6Body[2] = 0x0d; v6Body[3] = 0xb8; v6Body[15] = 1
            v6Body[32] = 0x01; v6Body[33] = 0xBB
            let v6 = ProxyHeader.signature + [0x21, 0x21, 0, 36] + v6Body
            #expect(ProxyHeader.parse(v6) == .proxied(source: "[2001:db8:0:0:0:0:0:1]:443", consumed: 52))
            let local = ProxyHeader.signature + [0x20, 0x00, 0, 0]
            #expect(ProxyHeader.parse(local) == .local(consumed: 16))
            if case .invalid(let m) = ProxyHeader.parse(Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".utf8)) {
                #expect(m.contains("v1"))
            } else { Issue.record("v1 must be refused") }
            if case .invalid(let m) = ProxyHeader.parse(ConnectionPreface.bytes) {
                #expect(m.contains("PROXY protocol v2"))
            } else { Issue.record("a bare preface must be refused") }
            let huge = ProxyHeader.signature + [0x21, 0x11, 0xFF, 0xFF]
            if case .invalid(let m) = ProxyHeader.parse(huge) { #expect(m.contains("1024")) } else { Issue.record("65535 bytes must be refused") }
            #expect(ProxyHeader.parse(ProxyHeader.signature + [0x31, 0x11, 0, 12]) == .invalid("PROXY protocol version 3, expected 2"))
        }

        @Test("state machine: the header's source becomes the connection's peer, split over reads; LOCAL keeps the socket's; none fails")
        func stateMachine() throws {
            let d = Driver { $0.proxyProtocol = true }
            d.handle(.accepted(1, peer: "127.0.0.1:40000"))
            let header = proxyV2Header(source: (198, 51, 100, 9), port: 5151)
            #expect(d.handle(.received(1, Array(header.prefix(10)))) == [])
            let actions = d.handle(.received(1, Array(header.dropFirst(10)) + ConnectionPreface.bytes + clientFrame(.hello(Hello(clientName: "t")))))
            #expect(actions.count == 1, "HELLO_ACK: \(actions)")
            if case .write(1, let bytes)? = actions.first, case .helloAck = try decodeOne(bytes).message {} else {
                Issue.record("expected HELLO_ACK, got \(actions)")
            }
            #expect(d.machine.connections[1]?.peer == "198.51.100.9:5151")

            d.handle(.accepted(2, peer: "127.0.0.1:40001"))
            let local = d.handle(.received(2, ProxyHeader.signature + [0x20, 0x00, 0, 0] + ConnectionPreface.bytes + clientFrame(.hello(Hello()))))
            #expect(local.count == 1)
            #expect(d.machine.connections[2]?.peer == "127.0.0.1:40001")

            d.handle(.accepted(3, peer: "127.0.0.1:40002"))
            let bare = d.handle(.received(3, ConnectionPreface.bytes + clientFrame(.hello(Hello()))))
            let message = "expected a PROXY protocol v2 header (proxy_protocol = true); the connection did not start with one"
            #expect(bare == [.write(3, try fatalFrame(.invalidArgument, message)), .halfClose(3)])
        }

        @Test(
            "through HAProxy with send-proxy-v2: a clip streams; a direct connection without the header is refused",
            .enabled(if: HAProxy.path != nil, "haproxy is not installed (apt-get install haproxy; scripts/install-deps.sh --test)"))
        func throughHAProxy() async throws {
            let node = try TestDaemon {
                $0.proxyProtocol = true
                $0.metricsListen = ListenAddress(host: "127.0.0.1", port: 0)
            }
            defer { node.stop() }
            let nodes = [HAProxy.Node(name: "node1", port: node.port, probePort: try #require(node.daemon.metricsPort))]
            let frontend = try HAProxy.freePort()
            let stats = try HAProxy.freePort()
            let proxy = try HAProxyProcess(
                configuration: HAProxy.configuration(frontendPort: frontend, statsPort: stats, nodes: nodes, serverOptions: "send-proxy-v2"))
            defer { proxy.stop() }
            let up = await eventually(within: 15) { try HAProxy.servers(statsPort: stats)["node1"]?.status == "UP" }
            try #require(up, "node1 UP: \(HAProxy.describe(statsPort: stats)); haproxy said: \(proxy.output)")
            let client = try await VidrdClient.connect(host: "127.0.0.1", port: frontend)
            let session = try await client.openSession(Fixture.request(seed: 3), maxClips: 1)
            var frames = 0
            for try await clip in session.clips() { frames += clip.frames.count }
            #expect(frames == 4)
            await client.close()

            let peer = try RawPeer(port: node.port)
            try peer.send(ConnectionPreface.bytes)
            try peer.send(.hello(Hello(clientName: "direct")))
            let error = try #require(try peer.readFatalError())
            #expect(error.code == .invalidArgument && error.message.contains("PROXY protocol v2"))
        }
    }
}
