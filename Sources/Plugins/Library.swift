import CVidrdPlugin
import Foundation
import VidrdRuntime
#if canImport(Glibc)
import Glibc
#endif

/// An external plugin library loaded with dlopen (see `vidrd_plugin.h`). Libraries are never
/// unloaded: strategies registered from them may live as long as the process.
public struct PluginLibrary: Sendable {
    public let path: String
    public let abiVersion: UInt32
    public let strategyNames: [String]
}

/// The ABI version this build of vidrd speaks.
public let vidrdPluginABIVersion = UInt32(VIDRD_PLUGIN_ABI_VERSION)

/// A pointer into a loaded library's static data.
struct StrategyDescriptor: @unchecked Sendable {
    let pointer: UnsafePointer<vidrd_strategy_desc>
    var desc: vidrd_strategy_desc { pointer.pointee }
}

extension StrategyRegistry {
    /// dlopens `path`, checks `abi_version`, and registers every strategy it describes.
    @discardableResult
    public mutating func loadLibrary(path: String) throws -> PluginLibrary {
        guard FileManager.default.fileExists(atPath: path) else {
            throw PluginError.library(path: path, reason: "no such file")
        }
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw PluginError.library(path: path, reason: "dlopen failed: \(String(cString: dlerror()))")
        }
        guard let sym = dlsym(handle, VIDRD_PLUGIN_ENTRY_SYMBOL) else {
            throw PluginError.library(path: path, reason: "no symbol \(VIDRD_PLUGIN_ENTRY_SYMBOL) (not a vidrd plugin)")
        }
        typealias Entry = @convention(c) () -> UnsafePointer<vidrd_plugin>?
        let entry = unsafeBitCast(sym, to: Entry.self)
        guard let plugin = entry() else { throw PluginError.library(path: path, reason: "\(VIDRD_PLUGIN_ENTRY_SYMBOL)() returned NULL") }
        let p = plugin.pointee
        guard p.abi_version == VIDRD_PLUGIN_ABI_VERSION else {
            throw PluginError.library(path: path, reason: "plugin ABI version \(p.abi_version), this vidrd speaks \(VIDRD_PLUGIN_ABI_VERSION)")
        }
        guard p.strategy_count > 0, p.strategy_count <= 1024, let list = p.strategies else {
            throw PluginError.library(path: path, reason: "describes \(p.strategy_count) strategies")
        }
        // Validate everything before registering anything.
        var staged = self
        var names: [String] = []
        for i in 0..<Int(p.strategy_count) {
            let d = StrategyDescriptor(pointer: list + i)
            let (info, caps) = try Self.describe(d, library: path)
            try staged.register(info) { params in try CStrategy(descriptor: d, capabilities: caps, parameters: params, info: info) }
            names.append(info.name)
        }
        self = staged
        let lib = PluginLibrary(path: path, abiVersion: p.abi_version, strategyNames: names)
        addLibrary(lib)
        return lib
    }

    static func describe(_ d: StrategyDescriptor, library: String) throws -> (StrategyInfo, StrategyCapabilities) {
        let desc = d.desc
        guard let cname = desc.name else { throw PluginError.library(path: library, reason: "a strategy has no name") }
        let name = String(cString: cname)
        func fail(_ why: String) -> PluginError { .library(path: library, reason: "strategy \"\(name)\": \(why)") }
        guard desc.create != nil else { throw fail("no create callback") }
        var params: [ParameterInfo] = []
        if desc.param_count > 0 {
            guard let list = desc.params, desc.param_count <= 64 else { throw fail("bad parameter list") }
            for i in 0..<Int(desc.param_count) {
                let pd = list[i]
                guard let pn = pd.name else { throw fail("parameter \(i) has no name") }
                let kind: String
                switch pd.kind {
                case Int32(VIDRD_PARAM_DOUBLE.rawValue): kind = "double"
                case Int32(VIDRD_PARAM_INT.rawValue): kind = "int"
                case Int32(VIDRD_PARAM_BOOL.rawValue): kind = "bool"
                case Int32(VIDRD_PARAM_STRING.rawValue): kind = "string"
                default: throw fail("parameter \(String(cString: pn)) has unknown kind \(pd.kind)")
                }
                guard pd.default_value.kind == pd.kind else { throw fail("parameter \(String(cString: pn)): default of another kind") }
                let dv = fromC(pd.default_value)
                params.append(ParameterInfo(name: String(cString: pn), kind: kind, defaultValue: dv,
                                            help: pd.help.map { String(cString: $0) } ?? "",
                                            minimum: pd.has_minimum != 0 ? pd.minimum : nil,
                                            maximum: pd.has_maximum != 0 ? pd.maximum : nil))
            }
        }
        var caps = StrategyCapabilities()
        func frames(_ v: Int32) throws -> FrameSelection? {
            switch v {
            case Int32(VIDRD_FRAMES_NONE.rawValue): return nil
            case Int32(VIDRD_FRAMES_ALL.rawValue): return .all
            case Int32(VIDRD_FRAMES_PROMPT.rawValue): return .prompt
            case Int32(VIDRD_FRAMES_NEW.rawValue): return .new
            default: throw fail("unknown frame set \(v)")
            }
        }
        if desc.noise_claim_count > 0 {
            guard let list = desc.noise_claims, desc.noise_claim_count <= 16, desc.initial_noise != nil else {
                throw fail("noise claims without an initial_noise callback")
            }
            for i in 0..<Int(desc.noise_claim_count) {
                let c = list[i]
                let layer: NoiseLayer
                switch c.layer {
                case Int32(VIDRD_LAYER_BASE.rawValue): layer = .base
                case Int32(VIDRD_LAYER_REFINE.rawValue): layer = .refine
                default: throw fail("unknown layer \(c.layer)")
                }
                let clips: ClipSelection
                switch c.clips {
                case Int32(VIDRD_CLIPS_FIRST.rawValue): clips = .first
                case Int32(VIDRD_CLIPS_CONTINUING.rawValue): clips = .continuing
                case Int32(VIDRD_CLIPS_ALL.rawValue): clips = .all
                default: throw fail("unknown clip set \(c.clips)")
                }
                guard let f = try frames(c.frames) else { throw fail("a noise claim covers no frames") }
                caps.noise.append(NoiseClaim(layer, clips: clips, frames: f))
            }
        }
        caps.latentOverrides = try frames(desc.latent_override_frames)
        if caps.latentOverrides != nil, desc.override_latents == nil { throw fail("latent overrides without an override_latents callback") }
        caps.timesteps = desc.provides_timesteps != 0
        if caps.timesteps, desc.frame_timesteps == nil { throw fail("provides_timesteps without a frame_timesteps callback") }
        caps.emission = desc.decides_emission != 0
        if caps.emission, desc.emitted_frames == nil { throw fail("decides_emission without an emitted_frames callback") }
        let info = StrategyInfo(name: name, summary: desc.summary.map { String(cString: $0) } ?? "", parameters: params, origin: library)
        return (info, caps)
    }

    static func fromC(_ v: vidrd_param_value) -> ParameterValue {
        switch v.kind {
        case Int32(VIDRD_PARAM_DOUBLE.rawValue): return .double(v.double_value)
        case Int32(VIDRD_PARAM_INT.rawValue): return .int(Int(v.int_value))
        case Int32(VIDRD_PARAM_BOOL.rawValue): return .bool(v.bool_value != 0)
        default: return .string(v.string_value.map { String(cString: $0) } ?? "")
        }
    }
}

/// The per-stream state of a C strategy; destroy() runs when the last copy goes.
final class CStrategyState: @unchecked Sendable {
    let descriptor: StrategyDescriptor
    let state: UnsafeMutableRawPointer
    init(descriptor: StrategyDescriptor, state: UnsafeMutableRawPointer) {
        self.descriptor = descriptor
        self.state = state
    }
    deinit { descriptor.desc.destroy?(state) }
}

/// A strategy implemented by a plugin library.
struct CStrategy: NoiseStrategy {
    let box: CStrategyState
    let capabilities: StrategyCapabilities
    let name: String

    init(descriptor d: StrategyDescriptor, capabilities: StrategyCapabilities, parameters: StrategyParameters, info: StrategyInfo) throws {
        self.capabilities = capabilities
        name = info.name
        var values: [vidrd_param_value] = []
        var strings: [UnsafeMutablePointer<CChar>] = []
        defer { strings.forEach { free($0) } }
        for p in info.parameters {
            var v = vidrd_param_value()
            switch parameters.values[p.name]! {
            case let .double(x): v.kind = Int32(VIDRD_PARAM_DOUBLE.rawValue); v.double_value = x
            case let .int(x): v.kind = Int32(VIDRD_PARAM_INT.rawValue); v.int_value = Int64(x)
            case let .bool(x): v.kind = Int32(VIDRD_PARAM_BOOL.rawValue); v.bool_value = x ? 1 : 0
            case let .string(x):
                let s = strdup(x)!
                strings.append(s)
                v.kind = Int32(VIDRD_PARAM_STRING.rawValue); v.string_value = UnsafePointer(s)
            }
            values.append(v)
        }
        var err = [CChar](repeating: 0, count: 512)
        let state = values.withUnsafeBufferPointer { vp in
            err.withUnsafeMutableBufferPointer { e in d.desc.create!(vp.baseAddress, e.baseAddress, e.count) }
        }
        guard let state else {
            throw PluginError.strategyFailed(strategy: info.name, reason: "create: \(cString(err))")
        }
        box = CStrategyState(descriptor: d, state: state)
    }

    var desc: vidrd_strategy_desc { box.descriptor.desc }

    /// Calls `body` with a filled `vidrd_clip_info` and an error buffer; throws the plugin's message on nonzero.
    func call(_ what: String, _ clip: ClipContext,
              _ body: (UnsafePointer<vidrd_clip_info>, UnsafeMutablePointer<CChar>, Int) -> Int32) throws {
        var err = [CChar](repeating: 0, count: 512)
        let prevNoise = clip.previous?.initialNoise.scalars ?? []
        let prevLatents = clip.previous?.latents.scalars ?? []
        let rc: Int32 = clip.fresh.scalars.withUnsafeBufferPointer { fresh in
            prevNoise.withUnsafeBufferPointer { pn in
                prevLatents.withUnsafeBufferPointer { pl in
                    var info = vidrd_clip_info()
                    info.index = Int64(clip.index)
                    info.frames = Int32(clip.shape.frames)
                    info.channels = Int32(clip.shape.channels)
                    info.height = Int32(clip.shape.height)
                    info.width = Int32(clip.shape.width)
                    info.prompt_frames = Int32(clip.shape.promptFrames)
                    info.steps = Int32(clip.shape.steps)
                    info.fresh = fresh.baseAddress
                    info.previous_noise = clip.previous == nil ? nil : pn.baseAddress
                    info.previous_latents = clip.previous == nil ? nil : pl.baseAddress
                    return err.withUnsafeMutableBufferPointer { e in body(&info, e.baseAddress!, e.count) }
                }
            }
        }
        if rc != 0 {
            let msg = cString(err)
            throw PluginError.strategyFailed(strategy: name, reason: "\(what): \(msg.isEmpty ? "returned \(rc)" : msg)")
        }
    }

    static func stepInfo(_ s: DenoiseStep) -> vidrd_step_info {
        vidrd_step_info(index: Int32(s.index), total: Int32(s.totalSteps), timestep: Int32(s.timestep),
                        previous_timestep: Int32(s.previousTimestep))
    }

    mutating func initialNoise(_ clip: ClipContext, layer: NoiseLayer, draft: inout NoiseDraft) throws {
        guard let f = desc.initial_noise else { return }
        var noise = draft.noise.scalars
        var written = [UInt8](repeating: 0, count: clip.shape.frames)
        let state = box.state
        let l = Int32(layer == .base ? VIDRD_LAYER_BASE.rawValue : VIDRD_LAYER_REFINE.rawValue)
        try call("initial_noise", clip) { info, e, n in
            noise.withUnsafeMutableBufferPointer { np in
                written.withUnsafeMutableBufferPointer { wp in f(state, info, l, np.baseAddress, wp.baseAddress, e, n) }
            }
        }
        let t = Tensor(shape: clip.shape.latentShape, scalars: noise)
        for j in 0..<clip.shape.frames where written[j] != 0 { try draft.setFrame(j, t.latentFrame(j)) }
    }

    mutating func frameTimesteps(_ clip: ClipContext, step: DenoiseStep) throws -> [FrameTimestep]? {
        guard let f = desc.frame_timesteps else { return nil }
        let n = clip.shape.frames
        var ts = [Int32](repeating: 0, count: n), prev = [Int32](repeating: 0, count: n)
        var used: Int32 = 0
        var si = Self.stepInfo(step)
        let state = box.state
        try call("frame_timesteps", clip) { info, e, en in
            ts.withUnsafeMutableBufferPointer { t in
                prev.withUnsafeMutableBufferPointer { p in f(state, info, &si, t.baseAddress, p.baseAddress, &used, e, en) }
            }
        }
        guard used != 0 else { return nil }
        return (0..<n).map { FrameTimestep(timestep: Int(ts[$0]), previous: Int(prev[$0])) }
    }

    mutating func overrideLatents(_ clip: ClipContext, step: DenoiseStep, latents: inout LatentFrames) throws {
        guard let f = desc.override_latents else { return }
        var values = latents.latents.scalars
        var written = [UInt8](repeating: 0, count: clip.shape.frames)
        var si = Self.stepInfo(step)
        let state = box.state
        try call("override_latents", clip) { info, e, n in
            values.withUnsafeMutableBufferPointer { v in
                written.withUnsafeMutableBufferPointer { w in f(state, info, &si, v.baseAddress, w.baseAddress, e, n) }
            }
        }
        let t = Tensor(shape: clip.shape.latentShape, scalars: values)
        for j in 0..<clip.shape.frames where written[j] != 0 { try latents.replaceFrame(j, with: t.latentFrame(j)) }
    }

    mutating func observe(_ clip: ClipContext, record: DenoiseStepRecord) throws {
        guard let f = desc.observe else { return }
        var si = Self.stepInfo(record.step)
        let state = box.state
        try call("observe", clip) { info, e, n in
            record.input.scalars.withUnsafeBufferPointer { a in
                record.noisePrediction.scalars.withUnsafeBufferPointer { b in
                    record.output.scalars.withUnsafeBufferPointer { c in
                        f(state, info, &si, a.baseAddress, b.baseAddress, c.baseAddress, e, n)
                    }
                }
            }
        }
    }

    mutating func emittedFrames(_ clip: ClipContext, latents: Tensor) throws -> [Int]? {
        guard let f = desc.emitted_frames else { return nil }
        var frames = [Int32](repeating: 0, count: clip.shape.frames)
        var count: Int32 = 0, used: Int32 = 0
        let state = box.state
        try call("emitted_frames", clip) { info, e, n in
            latents.scalars.withUnsafeBufferPointer { l in
                frames.withUnsafeMutableBufferPointer { fr in f(state, info, l.baseAddress, fr.baseAddress, &count, &used, e, n) }
            }
        }
        guard used != 0 else { return nil }
        guard count >= 0, Int(count) <= clip.shape.frames else {
            throw PluginError.strategyFailed(strategy: name, reason: "emitted_frames: count \(count) outside 0...\(clip.shape.frames)")
        }
        return frames[0..<Int(count)].map { Int($0) }
    }

    mutating func clipFinished(_ clip: ClipContext, record: ClipRecord) throws {
        guard let f = desc.clip_finished else { return }
        let state = box.state
        try call("clip_finished", clip) { info, e, n in
            record.initialNoise.scalars.withUnsafeBufferPointer { a in
                record.latents.scalars.withUnsafeBufferPointer { b in f(state, info, a.baseAddress, b.baseAddress, e, n) }
            }
        }
    }
}

func cString(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { b in
        let bytes = b.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
