import Foundation
import Testing
@testable import VidrdPlugins
import VidrdRuntime

/// The example C plugin (Examples/ExamplePluginC), built by SwiftPM as libVidrdExamplePlugin.so
/// next to the test bundle.
func examplePluginPath() throws -> String {
    var candidates: [URL] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
    }
    candidates.append(Bundle.main.bundleURL)
    candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
    candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
    for dir in candidates {
        let p = dir.appendingPathComponent("libVidrdExamplePlugin.so").path
        if FileManager.default.fileExists(atPath: p) { return p }
    }
    throw PluginError.library(path: "libVidrdExamplePlugin.so", reason: "not found beside the test bundle (looked in \(candidates.map(\.path)))")
}

@Suite struct CPluginTests {
    func confRegistry(_ extra: String = "") throws -> StrategyRegistry {
        let lib = try examplePluginPath()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-cplugin-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let conf = dir.appendingPathComponent("plugins.conf").path
        try "library \(lib)\n\(extra)".write(toFile: conf, atomically: true, encoding: .utf8)
        return try StrategyRegistry.load(conf: conf)
    }

    @Test func loadsFromPluginsConfAndRegistersByName() throws {
        let r = try confRegistry("set example_shift.shift = 2\n")
        let info = try #require(r.info(named: "example_shift"))
        #expect(info.origin.hasSuffix("libVidrdExamplePlugin.so"))
        #expect(info.parameters.map(\.name) == ["shift"] && info.parameters[0].kind == "int")
        #expect(info.parameters[0].defaultValue == .int(2))
        #expect(r.libraries.count == 1 && r.libraries[0].abiVersion == vidrdPluginABIVersion)
        #expect(r.strategies.map(\.name).contains("fnr"))
    }

    @Test func aStreamUsesTheCStrategy() throws {
        let r = try confRegistry()
        let n = 6
        for shift in [1, 4] {
            let cs = try clips(3, "example_shift:shift=\(shift),pns,dsg", registry: r)
            let (wp, wf) = PNSStrategy.weights(alpha: 4)
            for i in 1..<3 {
                let prev = cs[i - 1].initialNoise
                for j in 0..<2 {  // prompt frames: the C base layer
                    let expected = j + shift < n ? prev.latentFrame(j + shift) : cs[i].noiseDraw.latentFrame(j)
                    #expect(cs[i].initialNoise.latentFrame(j) == expected, "shift \(shift) clip \(i) frame \(j)")
                }
                for j in 2..<n {  // new frames: PNS refines on top
                    let e = zip(prev.latentFrame(n - 1 - j), cs[i].noiseDraw.latentFrame(j)).map { wp * $0 + wf * $1 }
                    #expect(cs[i].initialNoise.latentFrame(j) == e)
                }
            }
        }
    }

    @Test func timestepsOverridesAndEmissionThroughTheCABI() throws {
        let r = try confRegistry()
        let ts = Log<[Float]>()
        var backend = ToyBackend()
        backend.timestepLog = ts
        let seen = Log<SpyStrategy.Seen>()
        var reg = r
        reg.add("spy") { SpyStrategy(log: seen, calls: nil, name: "spy") }
        let cs = try clips(2, "fnr,example_probe,spy", registry: reg, backend: backend) { $0.steps = 3 }
        // Per-frame timesteps reached the model (both guidance entries).
        let schedule = try backend.scheduler.timesteps(steps: 3)
        for (k, t) in schedule.enumerated() {
            let one = (0..<6).map { Float(Swift.max(t - 20 * $0, 0)) }
            #expect(ts.all[k] == one + one)
        }
        // Step 0 of clip 1: prompt frames hold clip 0's final latents, reversed; later frames are FNR noise.
        let step0 = try #require(seen.all.first { $0.clip == 1 && $0.step == 0 })
        for j in 0..<2 { #expect(step0.input.latentFrame(j) == cs[0].latents.latentFrame(5 - j)) }
        for j in 2..<6 { #expect(step0.input.latentFrame(j) == cs[1].initialNoise.latentFrame(j)) }
        #expect(cs.map(\.emittedFrameIndices) == [[5], [5]])
        // It overrides prompt frames, so it conflicts with DSG.
        #expect {
            _ = try clips(1, "fnr,dsg,example_probe", registry: r)
        } throws: { ($0 as? PluginError)?.description.contains("\"dsg\" and \"example_probe\" both override latents") == true }
    }

    @Test func cStrategiesAreCheckedLikeBuiltIns() throws {
        let r = try confRegistry()
        var c = try toyConfig("fnr,example_shift")
        #expect {
            _ = try VideoStream(backend: ToyBackend(), configuration: c, registry: r)
        } throws: { ($0 as? PluginError)?.description.contains("\"fnr\" (all frames of clips ≥ 1) and \"example_shift\" (all frames of clips ≥ 1) both write the initial noise") == true }
        c.strategies = [StrategySpec(name: "example_shift", parameters: ["shift": .int(-1)])]
        #expect {
            _ = try VideoStream(backend: ToyBackend(), configuration: c, registry: r)
        } throws: { ($0 as? PluginError)?.description == "strategy \"example_shift\", parameter \"shift\": must be ≥ 0, got -1" }
        // Loading the same library twice registers the same names twice: an error naming both.
        var again = r
        #expect(throws: PluginError.self) { try again.loadLibrary(path: try examplePluginPath()) }
    }

    @Test func aLibraryWithoutTheEntryPointIsRejected() throws {
        // Any shared object that is not a plugin: libc's math library.
        let candidates = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib/aarch64-linux-gnu/libm.so.6"]
        let libm = try #require(candidates.first { FileManager.default.fileExists(atPath: $0) })
        var r = StrategyRegistry.builtIn()
        #expect {
            try r.loadLibrary(path: libm)
        } throws: { ($0 as? PluginError)?.description.contains("no symbol vidrd_plugin_entry") == true }
    }
}

/// The example Swift plugin (Examples/ExamplePluginSwift, `@_cdecl`), through the same C ABI.
@Suite struct SwiftCdeclPluginTests {
    @Test func emissionDecidedByTheSwiftPlugin() throws {
        let lib = try examplePluginPath().replacingOccurrences(of: "libVidrdExamplePlugin.so", with: "libVidrdExamplePluginSwift.so")
        var r = StrategyRegistry.builtIn()
        let loaded = try r.loadLibrary(path: lib)
        #expect(loaded.strategyNames == ["swift_stride"])
        #expect(r.info(named: "swift_stride")?.parameters.first?.defaultValue == .int(2))
        let cs = try clips(3, "fnr,pns,dsg,swift_stride:stride=4", registry: r)
        #expect(cs.map(\.emittedFrameIndices) == [[0, 4], [0, 4], [0, 4]])
        #expect(cs.map(\.firstFrameNumber) == [0, 2, 4])
        #expect(cs[1].frames.shape == [2, 4, 4, 3])
        #expect {
            _ = try clips(1, "swift_stride:stride=0", registry: r)
        } throws: { ($0 as? PluginError)?.description == "strategy \"swift_stride\", parameter \"stride\": must be ≥ 1, got 0" }
    }
}
