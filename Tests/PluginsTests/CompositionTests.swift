import Foundation
import Testing
@testable import VidrdPlugins
import VidrdRuntime

@Suite struct CompositionTests {
    func registry(_ calls: Log<String>? = nil) -> StrategyRegistry {
        var r = StrategyRegistry.builtIn()
        r.add("base-all") { ProbeStrategy(capabilities: StrategyCapabilities(noise: [NoiseClaim(.base, clips: .continuing, frames: .all)]), name: "base-all", calls: calls, writeFrames: [0]) }
        r.add("refine-new") { ProbeStrategy(capabilities: StrategyCapabilities(noise: [NoiseClaim(.refine, clips: .all, frames: .new)]), name: "refine-new", calls: calls, writeFrames: [5]) }
        r.add("refine-prompt") { ProbeStrategy(capabilities: StrategyCapabilities(noise: [NoiseClaim(.refine, clips: .all, frames: .prompt)]), name: "refine-prompt", calls: calls, value: 3, writeFrames: [0]) }
        r.add("prior") { ProbeStrategy(capabilities: StrategyCapabilities(noise: [NoiseClaim(.base, clips: .first, frames: .all)]), name: "prior", calls: calls, writeFrames: [1]) }
        r.add("hold-new") { ProbeStrategy(capabilities: StrategyCapabilities(latentOverrides: .new), name: "hold-new", calls: calls, writeFrames: [4]) }
        r.add("hold-prompt") { ProbeStrategy(capabilities: StrategyCapabilities(latentOverrides: .prompt), name: "hold-prompt", calls: calls, writeFrames: [0]) }
        r.add("rogue") { ProbeStrategy(capabilities: StrategyCapabilities(noise: [NoiseClaim(.refine, clips: .all, frames: .new)]), name: "rogue", calls: calls, writeFrames: [0]) }
        r.add("rogue-latents") { ProbeStrategy(capabilities: StrategyCapabilities(latentOverrides: .new), name: "rogue-latents", calls: calls, writeFrames: [1]) }
        r.add("emit-a") { ProbeStrategy(capabilities: StrategyCapabilities(emission: true), name: "emit-a") }
        r.add("emit-b") { ProbeStrategy(capabilities: StrategyCapabilities(emission: true), name: "emit-b") }
        r.add("ts-a") { ProbeStrategy(capabilities: StrategyCapabilities(timesteps: true), name: "ts-a") }
        r.add("ts-b") { ProbeStrategy(capabilities: StrategyCapabilities(timesteps: true), name: "ts-b") }
        return r
    }

    func conflict(_ chain: String, promptFrames: Int = 2) -> String? {
        do {
            var c = try toyConfig(chain)
            c.promptFrames = promptFrames
            _ = try VideoStream(backend: ToyBackend(), configuration: c, registry: registry())
            return nil
        } catch let e as PluginError {
            if case .conflict = e { return e.description }
            return "other: \(e)"
        } catch { return "other: \(error)" }
    }

    @Test func conflictsAreErrorsNamingBothStrategies() {
        #expect(conflict("none,fnr")?.contains("\"none\" must be the only strategy") == true)
        #expect(conflict("fnr,fnr")?.contains("appears twice") == true)
        #expect(
            conflict("fnr,base-all")
                == "strategy conflict: \"fnr\" (all frames of clips ≥ 1) and \"base-all\" (all frames of clips ≥ 1) both write the initial noise of all frames of clips ≥ 1 in the base layer")
        // Each side is worded by its own claim and the overlap is named, in PLUGINS.md's terms:
        // pns writes frames j ≥ M of clips ≥ 1, not "all frames of all clips".
        #expect(
            conflict("pns,refine-new")
                == "strategy conflict: \"pns\" (frames j ≥ M of clips ≥ 1) and \"refine-new\" (frames j ≥ M of every clip) both write the initial noise of frames j ≥ M of clips ≥ 1 in the refine layer")
        #expect(conflict("pyoco,prior")?.contains("\"pyoco\" (all frames of clip 0) and \"prior\" (all frames of clip 0)") == true)
        #expect(conflict("dsg,hold-prompt")?.contains("both override latents") == true)
        #expect(conflict("emit-a,emit-b")?.contains("both decide which frames are emitted") == true)
        #expect(conflict("ts-a,ts-b")?.contains("per-frame timesteps") == true)
        // Disjoint claims compose.
        #expect(conflict("fnr,pns,dsg") == nil)
        #expect(conflict("pyoco,fnr,pns,dsg") == nil)
        #expect(conflict("fnr,pns,refine-prompt") == nil)
        #expect(conflict("dsg,hold-new") == nil)
        #expect(conflict("none") == nil)
        // With M = 0 the prompt-frame set is empty, so nothing overlaps it.
        #expect(conflict("dsg,hold-prompt", promptFrames: 0) == nil)
    }

    @Test func noiseLayersRunBasesFirstThenRefinesEachInChainOrder() throws {
        let calls = Log<String>()
        let r = registry(calls)
        var s = try VideoStream(backend: ToyBackend(), configuration: try toyConfig("refine-prompt,refine-new,base-all", steps: 1), registry: r)
        _ = try s.nextClip()
        _ = try s.nextClip()
        let noiseCalls = calls.all.filter { $0.contains(".noise.") }
        // Clip 0: base-all claims continuing clips only; clip 1: base first.
        #expect(noiseCalls == ["refine-prompt.noise.refine", "refine-new.noise.refine",
                               "base-all.noise.base", "refine-prompt.noise.refine", "refine-new.noise.refine"])
    }

    @Test func chainOrderOfFnrAndPnsDoesNotMatter() throws {
        let a = try clips(3, "fnr,pns,dsg")
        let b = try clips(3, "dsg,pns,fnr")
        #expect(a.map(\.latents) == b.map(\.latents))
    }

    @Test func hooksRunInChainOrder() throws {
        let calls = Log<String>()
        var r = StrategyRegistry.builtIn()
        let seen = Log<SpyStrategy.Seen>()
        r.add("spy-a") { SpyStrategy(log: seen, calls: calls, name: "a") }
        r.add("spy-b") { SpyStrategy(log: seen, calls: calls, name: "b") }
        _ = try clips(1, "spy-b,spy-a", registry: r) { $0.steps = 2 }
        #expect(calls.all == ["b.observe", "a.observe", "b.observe", "a.observe", "b.finished", "a.finished"])
    }

    @Test func writingOutsideTheDeclaredClaimsFails() throws {
        #expect {
            _ = try clips(1, "rogue", registry: registry())
        } throws: { e in
            (e as? PluginError)?.description.contains("strategy \"rogue\" failed: wrote initial-noise frame 0, outside its declared claims") == true
        }
        #expect {
            _ = try clips(1, "rogue-latents", registry: registry())
        } throws: { e in
            (e as? PluginError)?.description.contains("overrode latents of frame 1, outside its declared frames") == true
        }
    }

    @Test func overridesAndRefinesWriteTheirFrames() throws {
        let r = registry()
        let cs = try clips(2, "fnr,refine-prompt,hold-new", registry: r) { $0.steps = 1 }
        #expect(cs[0].initialNoise.latentFrame(0) == [Float](repeating: 3, count: 32))  // refine-prompt on clip 0
        #expect(cs[1].initialNoise.latentFrame(0) == [Float](repeating: 3, count: 32))
        #expect(cs[1].initialNoise.latentFrame(1) == cs[0].initialNoise.latentFrame(4))  // FNR beneath
    }
}
