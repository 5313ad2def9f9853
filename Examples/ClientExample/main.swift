// docs/DAEMON.md's client library example, verbatim (DaemonTests checks the copy there and runs
// this against a daemon). Run: swift run vidrd-client-example [PORT], with vidrd-daemon listening.
import VidrdClient
import VidrdProtocol

let port = CommandLine.arguments.dropFirst().first.flatMap { UInt16($0) } ?? 7878  // ports are UInt16

// Async client: connect (TCP + handshake), one session of three clips with a strategy chain.
let client = try await VidrdClient.connect(host: "127.0.0.1", port: port, token: nil)
print("server \(client.serverInfo.serverName), model \(client.serverInfo.modelName)")
var request = OpenSession(prompt: "a red ball bouncing on grass")
request.chain = try StrategySpec.parseChain("fnr,pns:alpha=2")  // the CLI's syntax; nil: the server's chain
let session = try await client.openSession(request, prefetch: 2, maxClips: 3)
print("seed \(session.parameters.seed), chain \(session.parameters.chain.map(\.chainText).joined(separator: ","))")
for try await clip in session.clips() {  // or `for try await event in session`: every SessionEvent
    print("clip \(clip.start.clipIndex): \(clip.frames.count) frames")  // clip.frames[i].webp: a WebP file
}
await client.close()

// Blocking client, for code that is not async: the same calls, and `stream` calls back on this thread.
let blocking = try VidrdBlockingClient.connect(host: "127.0.0.1", port: port)
var frames = 0
try blocking.stream(OpenSession(prompt: "a green cube"), maxClips: 1) { event in
    if case .frame = event { frames += 1 }
    return true  // false cancels the session (CANCEL); it then ends without an error
}
print("blocking client: \(frames) frames")
blocking.close()
