import Foundation
import Testing
@testable import VidrdPlugins
import VidrdRuntime

@Suite struct RegistryTests {
    @Test func builtInsAndTheirDefaults() {
        let r = StrategyRegistry.builtIn()
        #expect(r.strategies.map(\.name) == ["none", "fnr", "pns", "dsg", "pyoco", "fifo", "freenoise"])
        #expect(r.info(named: "pns")?.parameters.first?.defaultValue == .double(4))
        #expect(r.info(named: "fifo")?.parameters.map(\.name) == ["partitions", "window", "lookahead"])
        #expect(r.info(named: "fifo")?.parameters.map(\.defaultValue) == [.int(0), .int(0), .bool(false)])
        #expect(r.info(named: "freenoise")?.parameters.map(\.defaultValue) == [.int(4), .double(1)])
        #expect(r.info(named: "dsg")?.parameters.first?.defaultValue == .double(0.4))
        #expect(r.defaultChain.map(\.name) == ["fnr", "pns", "dsg"])
        let c = StreamConfiguration(prompt: "x")
        #expect(c.strategies.map(\.name) == ["fnr", "pns", "dsg"] && c.promptFrames == 4)
        // Steps and guidance follow the one generation-default policy, not the paper's 50 and 10.
        #expect(c.steps == 25 && c.guidanceScale == 7.5 && c.frames == 16)
    }

    func error(_ chain: [StrategySpec]) -> String? {
        var c = try! toyConfig("none")
        c.strategies = chain
        do { _ = try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn()); return nil } catch { return "\(error)" }
    }

    @Test func parametersAreTypedAndValidated() {
        #expect(error([StrategySpec(name: "fnx")]) == "unknown strategy \"fnx\" (registered: none, fnr, pns, dsg, pyoco, fifo, freenoise)")
        #expect(error([StrategySpec(name: "pns", parameters: ["beta": .double(1)])]) == "strategy \"pns\" has no parameter \"beta\" (it takes: alpha)")
        #expect(error([StrategySpec(name: "fnr", parameters: ["alpha": .double(1)])]) == "strategy \"fnr\" has no parameter \"alpha\" (it takes none)")
        #expect(error([StrategySpec(name: "dsg", parameters: ["beta": .double(1.5)])]) == "strategy \"dsg\", parameter \"beta\": must be ≤ 1, got 1.5")
        #expect(error([StrategySpec(name: "pns", parameters: ["alpha": .double(-1)])]) == "strategy \"pns\", parameter \"alpha\": must be ≥ 0, got -1.0")
        #expect(error([StrategySpec(name: "pns", parameters: ["alpha": .bool(true)])]) == "strategy \"pns\", parameter \"alpha\": expects a double, got a bool (true)")
        #expect(error([StrategySpec(name: "pns", parameters: ["alpha": .string("four")])]) == "strategy \"pns\", parameter \"alpha\": \"four\" is not a double")
        #expect(error([StrategySpec(name: "pns", parameters: ["alpha": .double(.nan)])])?.contains("must be finite") == true)
        // Ints are accepted for doubles; text is parsed.
        #expect(error([StrategySpec(name: "pns", parameters: ["alpha": .int(2)])]) == nil)
        #expect(error([StrategySpec(name: "dsg", parameters: ["beta": .string("0.25")])]) == nil)
    }

    @Test func streamConfigurationIsValidated() {
        func err(_ f: (inout StreamConfiguration) -> Void) -> String? {
            var c = try! toyConfig("fnr")
            f(&c)
            do { _ = try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn()); return nil } catch { return "\(error)" }
        }
        #expect(err { $0.promptFrames = 7 }?.contains("prompt frames M must be in 0...6") == true)
        #expect(err { $0.promptFrames = -1 } != nil)
        #expect(err { $0.steps = 0 } != nil)
        #expect(err { $0.frames = 0 } != nil)
        #expect(err { $0.promptFrames = 6 } == nil)
        #expect(err { $0.promptFrames = 0 } == nil)
    }

    @Test func parseList() throws {
        let specs = try StrategySpec.parseList("fnr, pns:alpha=2,dsg:beta=0.3")
        #expect(specs == [StrategySpec(name: "fnr"), StrategySpec(name: "pns", parameters: ["alpha": .string("2")]),
                          StrategySpec(name: "dsg", parameters: ["beta": .string("0.3")])])
        #expect(throws: PluginError.self) { _ = try StrategySpec.parseList("pns:alpha") }
        #expect(throws: PluginError.self) { _ = try StrategySpec.parseList(" , ") }
    }

    @Test func namesAreRegisteredOnce() {
        var r = StrategyRegistry.builtIn()
        #expect(throws: PluginError.self) { try r.register(StrategyInfo(name: "fnr", summary: "", parameters: [])) { _ in FNRStrategy() } }
        #expect(throws: PluginError.self) { try r.register(StrategyInfo(name: "Bad Name", summary: "", parameters: [])) { _ in FNRStrategy() } }
    }
}

@Suite struct ConfTests {
    func write(_ text: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-conf-\(getpid())-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("plugins.conf").path
        try! text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func loadError(_ text: String) -> String? {
        let path = write(text)
        do { _ = try StrategyRegistry.load(conf: path); return nil } catch {
            return "\(error)".replacingOccurrences(of: path, with: "plugins.conf")
        }
    }

    @Test func theCommittedFileLoads() throws {
        let root = fixtures.deletingLastPathComponent().deletingLastPathComponent()
        let r = try StrategyRegistry.load(conf: root.appendingPathComponent("plugins.conf").path)
        // The shipped default is the measured one (docs/PLUGINS.md, "Choosing the default"):
        // fifo with 8-frame windows; the paper's chain stays enabled and is the library's built-in.
        #expect(r.defaultChain.map(\.name) == ["fifo"])
        #expect(try r.resolve(StrategySpec(name: "fifo")).values["window"] == .int(8))
        #expect(r.defaultPromptFrames == 4)
        #expect(r.defaultEmission == StrategyRegistry.builtInDefaultEmission)
        let c = StreamConfiguration(prompt: "x", registry: r)
        #expect(c.strategies.map(\.name) == ["fifo"])
        #expect(StreamConfiguration(prompt: "x").strategies == StrategyRegistry.builtInDefaultChain)
        #expect(StrategyRegistry.builtInDefaultChain.map(\.name) == ["fnr", "pns", "dsg"])
        for name in ["fnr", "pns", "dsg", "freenoise", "none"] { #expect(r.isEnabled(name), "\(name) can be named by a session") }
    }

    @Test func directivesApply() throws {
        let r = try StrategyRegistry.load(conf: write("""
            # comment
            enable fnr pns dsg   # trailing comment
            enable none
            chain fnr, pns
            set pns.alpha = 2
            set dsg.beta 0.25
            emit all
            prompt-frames 3
            """))
        #expect(r.strategies.map(\.name) == ["none", "fnr", "pns", "dsg"])
        #expect(r.info(named: "pyoco") == nil)
        #expect(r.info(named: "pns")?.parameters[0].defaultValue == .double(2))
        #expect(r.info(named: "dsg")?.parameters[0].defaultValue == .double(0.25))
        #expect(r.defaultChain.map(\.name) == ["fnr", "pns"] && r.defaultEmission == .all && r.defaultPromptFrames == 3)
        // Disabled strategies cannot be named by a session; defaults flow into streams.
        var c = try toyConfig("pyoco")
        #expect(throws: PluginError.self) { _ = try VideoStream(backend: ToyBackend(), configuration: c, registry: r) }
        c.strategies = [StrategySpec(name: "pns")]
        #expect(try r.resolve(c.strategies[0]).double("alpha") == 2)
    }

    @Test func errorsNameFileAndLine() {
        #expect(loadError("chain fnr\nbogus 1\n") == "plugins.conf:2: unknown directive \"bogus\" (expected library, enable, chain, set, emit or prompt-frames)")
        #expect(loadError("\n\nset pns.alpha\n") == "plugins.conf:3: expected \"set STRATEGY.PARAMETER = VALUE\"")
        #expect(loadError("set alpha = 3\n") == "plugins.conf:1: expected STRATEGY.PARAMETER before \"=\", got \"alpha\"")
        #expect(loadError("# x\nset pns.alpha = -2\n") == "plugins.conf:2: strategy \"pns\", parameter \"alpha\": must be ≥ 0, got -2.0")
        #expect(loadError("set pns.gamma = 1\n") == "plugins.conf:1: strategy \"pns\" has no parameter \"gamma\" (it takes: alpha)")
        #expect(loadError("set fnx.alpha = 1\n")?.hasPrefix("plugins.conf:1: unknown strategy \"fnx\"") == true)
        #expect(loadError("set dsg.beta = lots\n") == "plugins.conf:1: strategy \"dsg\", parameter \"beta\": \"lots\" is not a double")
        #expect(loadError("chain fnr\nchain pns\n") == "plugins.conf:2: a second chain line (the first is line 1)")
        #expect(loadError("chain fnr,fnx\n") == "plugins.conf:1: chain: strategy \"fnx\" is not registered")
        #expect(loadError("enable fnr\nchain pns\n") == "plugins.conf:2: chain: strategy \"pns\" is not enabled")
        #expect(loadError("enable fnr fnz\n")?.hasPrefix("plugins.conf:1: enable: unknown strategy \"fnz\"") == true)
        #expect(loadError("emit some\n") == "plugins.conf:1: emit takes \"all\" or \"new\", got \"some\"")
        #expect(loadError("prompt-frames -1\n") == "plugins.conf:1: prompt-frames takes an integer in 0...256, got \"-1\"")
        #expect(loadError("\n\n\nchain none,fnr\n") == "plugins.conf:4: strategy conflict: \"none\" must be the only strategy of its chain, got none,fnr")
        #expect(loadError("library\n") == "plugins.conf:1: library needs a path")
        #expect(loadError("\nlibrary ./missing.so\n")?.hasPrefix("plugins.conf:2: plugin library ") == true)
        #expect(loadError("\nlibrary ./missing.so\n")?.hasSuffix("missing.so: no such file") == true)
        #expect(loadError("chain\n") == "plugins.conf:1: chain needs at least one strategy name (\"none\" for the baseline)")
    }

    @Test func unreadableFile() {
        #expect(throws: PluginError.self) { _ = try StrategyRegistry.load(conf: "/nonexistent/plugins.conf") }
    }
}
