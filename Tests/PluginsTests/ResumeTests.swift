import Foundation
import Testing
@testable import VidrdPlugins
import VidrdRuntime

/// `VideoStream.saveState` / `restoreState`: a stream restored in a fresh instance continues bit for
/// bit, and damaged or mismatched state is refused with a message instead of a crash.
@Suite struct ResumeTests {
    /// Every built-in strategy, alone or in a valid combination, both FIFO modes, and FIFO fed by a base.
    static let chains = ["none", "fnr", "fnr,pns,dsg", "pyoco,fnr,pns", "pyoco:authors_scale=true,freenoise,dsg",
                         "freenoise:window=3:reuse=0.7", "fifo", "fifo:lookahead=true", "fifo:window=4:partitions=2",
                         "fifo:window=4:partitions=2:lookahead=true", "freenoise:window=3,fifo"]

    static func stream(_ chain: String, generator: NoiseGenerator = .vidrd, registry: StrategyRegistry = .builtIn(),
                       configure: (inout StreamConfiguration) -> Void = { _ in }) throws -> VideoStream {
        var c = try toyConfig(chain)
        c.noiseGenerator = generator
        configure(&c)
        return try VideoStream(backend: ToyBackend(), configuration: c, registry: registry)
    }

    static func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

    static func expectSame(_ a: EmittedClip, _ b: EmittedClip, _ what: String) {
        #expect(a.index == b.index, "\(what): index")
        #expect(a.firstFrameNumber == b.firstFrameNumber, "\(what): first frame number")
        #expect(a.emittedFrameIndices == b.emittedFrameIndices, "\(what): emitted frames")
        for (name, x, y) in [("frames", a.frames, b.frames), ("latents", a.latents, b.latents),
                             ("initial noise", a.initialNoise, b.initialNoise), ("noise draw", a.noiseDraw, b.noiseDraw)] {
            #expect(x.shape == y.shape && bits(x) == bits(y), "\(what): \(name)")
        }
        #expect(a.extraNoiseDraws.map { $0.shape } == b.extraNoiseDraws.map { $0.shape }
                && a.extraNoiseDraws.map(bits) == b.extraNoiseDraws.map(bits), "\(what): extra draws")
    }

    /// Stream A runs 6 clips, saving before each of the first 4; for every saved point k a fresh
    /// stream B restores it and must emit A's clips k, k+1, k+2 bit for bit. Also: saving is
    /// deterministic, B saves back the bytes it restored, and the size bound holds.
    @Test(arguments: chains)
    func aRestoredStreamContinuesBitForBit(chain: String) throws {
        for generator in NoiseGenerator.allCases {
            let what = "\(chain) / \(generator.rawValue)"
            var a = try Self.stream(chain, generator: generator)
            #expect(a.resumeObstacle == nil, "\(what)")
            let bound = a.savedStateSizeBound
            var saved: [[UInt8]] = []
            var reference: [EmittedClip] = []
            for k in 0..<6 {
                if k < 4 {
                    let s = try a.saveState()
                    #expect(try a.saveState() == s, "\(what): saving twice gives the same bytes")
                    #expect(s.count <= bound, "\(what): \(s.count) bytes after \(k) clips, bound \(bound)")
                    if k > 0 { #expect(bound <= 2 * s.count + 4096, "\(what): bound \(bound) for \(s.count) bytes") }
                    saved.append(s)
                }
                reference.append(try a.nextClip())
            }
            for (k, s) in saved.enumerated() {
                var b = try Self.stream(chain, generator: generator)
                try b.restoreState(s)
                #expect(b.clipIndex == k && b.framesEmitted == a.framesEmitted - reference[k...].reduce(0) { $0 + Int64($1.emittedFrameIndices.count) })
                #expect(try b.saveState() == s, "\(what): restored state saves back to the same bytes")
                for j in k..<(k + 3) { Self.expectSame(try b.nextClip(), reference[j], "\(what), saved after \(k) clips, clip \(j)") }
            }
        }
    }

    @Test func restoringReplacesTheStateOfAStreamThatHasRunAlready() throws {
        for chain in ["fnr,pns,dsg", "fifo:window=4:partitions=2:lookahead=true"] {
            var a = try Self.stream(chain, configure: { $0.seed = 11 })
            _ = try a.nextClip()
            _ = try a.nextClip()
            let s = try a.saveState()
            // Another seed and three clips of its own: all of that is replaced.
            var b = try Self.stream(chain, configure: { $0.seed = 12 })
            for _ in 0..<3 { _ = try b.nextClip() }
            try b.restoreState(s)
            for j in 2..<4 { Self.expectSame(try b.nextClip(), try a.nextClip(), "\(chain), clip \(j)") }
        }
    }

    /// The error of restoring `bytes` into `stream`, or nil when it was accepted.
    static func restoreError(_ bytes: [UInt8], into stream: VideoStream) -> String? {
        var s = stream
        do { try s.restoreState(bytes); return nil } catch let e as PluginError {
            if case .invalidConfiguration = e { return e.description }
            return "unexpected kind: \(e)"
        } catch { return "unexpected error: \(error)" }
    }

    @Test func anotherChainShapeOrSourceIsNamed() throws {
        var a = try Self.stream("fnr,pns,dsg")
        _ = try a.nextClip()
        let s = try a.saveState()
        func error(_ chain: String, _ configure: (inout StreamConfiguration) -> Void = { _ in }) throws -> String {
            try #require(Self.restoreError(s, into: try Self.stream(chain, configure: configure)))
        }
        #expect(try error("fnr,pns").contains("saved for chain fnr,pns,dsg, this stream's chain is fnr,pns"))
        #expect(try error("fnr,dsg,pns").contains("chain is fnr,dsg,pns"))
        #expect(try error("fnr,pns,dsg") { $0.frames = 8 }.contains("saved for 6 frames, this stream has 8"))
        #expect(try error("fnr,pns,dsg") { $0.steps = 4 }.contains("saved for 5 steps, this stream has 4"))
        #expect(try error("fnr,pns,dsg") { $0.promptFrames = 3 }.contains("saved for 2 prompt frames, this stream has 3"))
        #expect(try error("fnr,pns,dsg") { $0.emission = .new }.contains("emission mode"))
        #expect(try error("fnr,pns,dsg") { $0.noiseGenerator = .torch }.contains("saved with noise source seeded, this stream draws from VidrdRuntime.TorchRandomSource"))
        var wide = try Self.stream("fnr,pns,dsg")
        wide = try VideoStream(backend: ToyBackend(channels: 3), configuration: wide.configuration, registry: .builtIn())
        #expect(Self.restoreError(s, into: wide)?.contains("saved for 2 channels, this stream has 3") == true)
        var fifo = try Self.stream("fifo:window=4:partitions=2")
        _ = try fifo.nextClip()
        #expect(Self.restoreError(try fifo.saveState(), into: try Self.stream("fifo:window=4:partitions=3"))?
            .contains("fifo queue holds 8 frames, this stream's settings need 0 or 12") == true)
    }

    @Test func damagedBytesAreRefusedWithoutCrashing() throws {
        let chain = "fnr,pns,dsg"
        var a = try Self.stream(chain)
        _ = try a.nextClip()
        _ = try a.nextClip()
        let s = try a.saveState()
        let target = try Self.stream(chain)
        #expect(Self.restoreError(s, into: target) == nil)

        // Every truncation, and one byte more.
        for n in 0..<s.count {
            #expect(Self.restoreError(Array(s.prefix(n)), into: target)?.contains("saved state: ") == true, "\(n) of \(s.count) bytes")
        }
        #expect(Self.restoreError(s + [0], into: target)?.contains("1 trailing bytes after the stream state") == true)
        var magic = s
        magic[0] = UInt8(ascii: "X")
        #expect(Self.restoreError(magic, into: target)?.contains("not a vidrd stream state") == true)
        var version = s
        version[4] = 2
        #expect(Self.restoreError(version, into: target)?.contains("format version 2, this build reads 1") == true)

        // Offsets of the previous clip's initial noise: magic, version, chain, shape, emission,
        // clip index, frames emitted, previous flag, previous index.
        let chainBytes = 4 + a.chain.reduce(0) { $0 + 4 + $1.utf8.count + 4 }
        let noiseCount = 4 + 4 + chainBytes + 6 * 4 + 1 + 8 + 8 + 1 + 8
        let latentCount = a.shape.latentShape.reduce(1, *)
        func setU32(_ b: inout [UInt8], at o: Int, _ v: UInt32) { for k in 0..<4 { b[o + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) } }
        #expect(s[noiseCount] == UInt8(latentCount & 0xFF) && s[noiseCount + 1] == UInt8(latentCount >> 8), "offset of the noise count")
        for bad in [UInt32(latentCount + 1), UInt32(latentCount - 1), 0xFFFF_FFFF] {
            var b = s
            setU32(&b, at: noiseCount, bad)
            #expect(Self.restoreError(b, into: target)?.contains("previous initial noise count is \(bad), expected \(latentCount)") == true)
        }
        // NaN and infinity in the latents, and in DSG's records (the blob's last value).
        let latentsFirst = noiseCount + 4 + 4 * latentCount + 4
        for (offset, name) in [(latentsFirst, "previous latents: value 0"), (s.count - 4, "strategy \"dsg\": dsg step 4 frame 1: value 31")] {
            for v in [Float.nan, .infinity, -.infinity] {
                var b = s
                setU32(&b, at: offset, v.bitPattern)
                #expect(Self.restoreError(b, into: target)?.contains("\(name) is \(v)") == true, "\(name) = \(v)")
            }
        }

        // Any one byte flipped: refused or accepted, never a trap (flips inside floats go unseen).
        var refused = 0
        for i in 0..<s.count {
            var b = s
            b[i] ^= 0xFF
            if Self.restoreError(b, into: target) != nil { refused += 1 }
        }
        #expect(refused >= 4 + 4 + chainBytes + 6 * 4, "every flip in the header is refused; \(refused) of \(s.count) flips were")

        // A refused restore leaves the stream as it was.
        var c = target
        #expect(throws: PluginError.self) { try c.restoreState(Array(s.prefix(s.count - 1))) }
        var fresh = try Self.stream(chain)
        Self.expectSame(try c.nextClip(), try fresh.nextClip(), "after a refused restore")
    }

    /// A Swift strategy that keeps state across clips but has not opted in.
    struct HiddenStateStrategy: NoiseStrategy {
        var clipsSeen = 0
        var capabilities: StrategyCapabilities { StrategyCapabilities() }
        mutating func clipFinished(_ clip: ClipContext, record: ClipRecord) throws { clipsSeen += 1 }
    }

    /// A custom noise source without `ResumableRandomSource`.
    struct PlainSource: RandomSource, Sendable {
        var inner = SeededRandomSource(seed: 3)
        mutating func standardNormal(count: Int) -> [Float] { inner.standardNormal(count: count) }
    }

    static func expectNotResumable(_ s: VideoStream, mentioning words: [String]) throws {
        let obstacle = try #require(s.resumeObstacle)
        for w in words { #expect(obstacle.contains(w), "\(obstacle)") }
        #expect(throws: PluginError.invalidConfiguration(obstacle)) { try s.saveState() }
        var t = s
        #expect(throws: PluginError.invalidConfiguration(obstacle)) { try t.restoreState([]) }
        #expect(s.savedStateSizeBound == 0)
    }

    @Test func aStrategyThatHasNotOptedInIsNotResumable() throws {
        var r = StrategyRegistry.builtIn()
        r.add("hidden") { HiddenStateStrategy() }
        var s = try Self.stream("fnr,hidden,pns", registry: r)
        try Self.expectNotResumable(s, mentioning: ["strategy \"hidden\"", "HiddenStateStrategy", "does not conform to ResumableStrategy"])
        _ = try s.nextClip()
        try Self.expectNotResumable(s, mentioning: ["strategy \"hidden\""])
    }

    @Test func aCPluginIsNotResumable() throws {
        var r = StrategyRegistry.builtIn()
        try r.loadLibrary(path: try examplePluginPath())
        let s = try Self.stream("example_shift:shift=1,pns,dsg", registry: r)
        try Self.expectNotResumable(s, mentioning: ["strategy \"example_shift\" is a C plugin, whose state vidrd cannot save"])
    }

    @Test func customSourcesResumeOnlyWhenTheyConform() throws {
        let c = try toyConfig("fnr,pns")
        let plain = try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn(), random: PlainSource())
        try Self.expectNotResumable(plain, mentioning: ["PlainSource", "does not conform to ResumableRandomSource"])

        func torch() throws -> VideoStream {
            try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn(), random: TorchRandomSource(seed: 5))
        }
        var a = try torch()
        _ = try a.nextClip()
        var b = try torch()
        try b.restoreState(try a.saveState())
        Self.expectSame(try b.nextClip(), try a.nextClip(), "custom torch source")
        // The tag is the source's type: a seeded stream's state does not fit it.
        var seeded = try Self.stream("fnr,pns")
        _ = try seeded.nextClip()
        #expect(Self.restoreError(try seeded.saveState(), into: try torch())?.contains("saved with noise source seeded") == true)
    }

    @Test func aClipInProgressCannotBeSaved() throws {
        for chain in ["fnr,pns,dsg", "fifo:window=4:partitions=2"] {
            var s = try Self.stream(chain)
            _ = try s.nextClip()
            #expect(throws: ModelError.cancelled) { _ = try s.nextClip { _ in false } }
            #expect(s.resumeObstacle == nil)
            #expect { try s.saveState() } throws: {
                ($0 as? PluginError)?.description.contains("clip 1 was started and not finished") == true
            }
            let retried = try s.nextClip()
            var b = try Self.stream(chain)
            try b.restoreState(try s.saveState())
            Self.expectSame(try b.nextClip(), try s.nextClip(), "\(chain) after a retried clip")
            #expect(retried.index == 1)
        }
    }

    @Test func aTapeStreamResumesAtItsPosition() throws {
        for chain in ["fnr,pns,dsg", "fifo:window=4:partitions=2"] {
            var seeded = try Self.stream(chain)
            let recorded = try (0..<5).map { _ in try seeded.nextClip() }
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-resume-\(UUID().uuidString).safetensors").path
            let shorter = path + ".short.safetensors"
            defer {
                try? FileManager.default.removeItem(atPath: path)
                try? FileManager.default.removeItem(atPath: shorter)
            }
            let draws = recorded.flatMap { [$0.noiseDraw] + $0.extraNoiseDraws }
            try NoiseTape.write(draws, to: path)
            try NoiseTape.write(Array(draws.dropLast()), to: shorter)
            var a = try Self.stream(chain) { $0.tapePath = path }
            _ = try a.nextClip()
            _ = try a.nextClip()
            let s = try a.saveState()
            var b = try Self.stream(chain) { $0.tapePath = path }
            try b.restoreState(s)
            for j in 2..<5 {
                let clip = try b.nextClip()
                Self.expectSame(clip, recorded[j], "\(chain): tape clip \(j) against the seeded run")
                Self.expectSame(clip, try a.nextClip(), "\(chain): tape clip \(j)")
            }
            let other = try Self.stream(chain) { $0.tapePath = shorter }
            #expect(Self.restoreError(s, into: other)?.contains("saved tape holds \(draws.count) tensors, \(shorter) holds \(draws.count - 1)") == true)
            #expect(Self.restoreError(s, into: try Self.stream(chain))?.contains("saved with noise source tape, this stream draws from seeded") == true)
        }
    }

    /// What the state of the toy configuration weighs, for the record (docs/PLUGINS.md).
    @Test func savedSizeOfTheToyConfiguration() throws {
        for chain in ["fnr,pns,dsg", "fifo", "none"] {
            var s = try Self.stream(chain)
            var sizes = [try s.saveState().count]
            for _ in 0..<2 { _ = try s.nextClip(); sizes.append(try s.saveState().count) }
            print("resume state \(chain): \(sizes) bytes (bound \(s.savedStateSizeBound))")
            #expect(sizes[1] > sizes[0])
            #expect(sizes[1] == sizes[2], "the state's size does not grow with the clip index")
        }
    }
}
