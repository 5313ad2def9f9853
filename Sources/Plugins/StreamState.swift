import VidrdRuntime

/// Saving a stream between clips and restoring it in another process (resumable sessions).
///
/// Layout (little-endian, `StateWriter`): magic "VDST", format version; the chain (name and
/// state format version of each strategy); the clip shape and emission mode; clip index and
/// frames emitted; the previous clip's record; the noise source (kind, type tag, position); then
/// one count-prefixed section per strategy, in chain order. The configuration itself (prompt,
/// seed, tape path, parameters) is not in it: the caller restores into a stream created with the
/// same configuration and registry, and the header lets a mismatch fail with a clear error.
extension VideoStream {
    static let stateMagic: [UInt8] = Array("VDST".utf8)
    static let stateFormatVersion: UInt32 = 1
    /// Clip counters beyond this are not a real stream's (and keep products in range).
    static let maxSavedClipIndex = 1 << 40

    /// nil when `saveState()` can capture this stream; otherwise why not, naming the cause.
    public var resumeObstacle: String? {
        for slot in slots where !(slot.strategy is any ResumableStrategy) {
            if slot.strategy is CStrategy {
                return "strategy \"\(slot.name)\" is a C plugin, whose state vidrd cannot save"
            }
            return "strategy \"\(slot.name)\" (\(String(reflecting: type(of: slot.strategy)))) does not conform to ResumableStrategy, so vidrd cannot save its state"
        }
        if case .custom(let r) = noise, !(r is any ResumableRandomSource) {
            return "the noise source \(String(reflecting: type(of: r))) does not conform to ResumableRandomSource, so vidrd cannot save its position"
        }
        return nil
    }

    /// The stream's whole state between clips, as bytes. Call it only between clips: after
    /// `nextClip` returned (or before the first), not after a cancelled or failed clip that has
    /// not been retried. Deterministic: the same state gives the same bytes.
    public func saveState() throws -> [UInt8] {
        if let obstacle = resumeObstacle { throw PluginError.invalidConfiguration(obstacle) }
        guard pendingFresh == nil, pendingExtra.isEmpty else {
            throw PluginError.invalidConfiguration("clip \(clipIndex) was started and not finished (cancelled or failed); save the state after nextClip returns")
        }
        var w = StateWriter()
        for b in Self.stateMagic { w.u8(b) }
        w.u32(Self.stateFormatVersion)
        w.count(slots.count)
        for slot in slots {
            w.string(slot.name)
            w.u32(Self.resumable(slot).map { type(of: $0).stateFormatVersion } ?? 0)
        }
        for v in [shape.frames, shape.channels, shape.height, shape.width, shape.promptFrames, shape.steps] { w.count(v) }
        w.u8(Self.emissionCode(configuration.emission))
        w.u64(UInt64(clipIndex))
        w.u64(UInt64(framesEmitted))
        w.bool(previous != nil)
        if let p = previous {
            w.u64(UInt64(p.index))
            w.f32Array(p.initialNoise.scalars)
            w.f32Array(p.latents.scalars)
            w.u32Array(p.emitted.map { UInt32($0) })
        }
        let (kind, tag, source) = noiseSource
        w.u8(kind)
        w.string(tag)
        var section = StateWriter()
        source?.saveState(into: &section)
        w.section(section.bytes)
        for slot in slots {
            var section = StateWriter()
            Self.resumable(slot)?.saveState(into: &section)
            w.section(section.bytes)
        }
        return w.bytes
    }

    /// Restores bytes from `saveState()` of a stream created with the same configuration and
    /// registry. Every count is checked against this stream's shape and chain, and noise and
    /// latents must be finite; on any mismatch it throws `PluginError.invalidConfiguration`
    /// naming it and leaves the stream as it was.
    public mutating func restoreState(_ bytes: [UInt8]) throws {
        if let obstacle = resumeObstacle { throw PluginError.invalidConfiguration(obstacle) }
        var copy = self
        do {
            try copy.decodeState(bytes)
        } catch let e as StateCodingError {
            throw PluginError.invalidConfiguration("saved state: \(e.message)")
        }
        self = copy
    }

    /// An upper bound of `saveState()`'s size for this stream's shape and chain, valid at every
    /// clip boundary (0 when `resumeObstacle` is not nil).
    public var savedStateSizeBound: Int {
        guard resumeObstacle == nil else { return 0 }
        let latentCount = shape.latentShape.reduce(1, *)
        var n = Self.stateMagic.count + 4
        n += StateWriter.countSize + slots.reduce(0) { $0 + StateWriter.stringSize($1.name) + 4 }
        n += 6 * 4 + 1 + 8 + 8
        n += 1 + 8 + 2 * StateWriter.f32ArraySize(latentCount) + StateWriter.u32ArraySize(shape.frames)
        let (_, tag, source) = noiseSource
        n += 1 + StateWriter.stringSize(tag) + StateWriter.countSize + (source?.stateSizeBound ?? 0)
        for slot in slots { n += StateWriter.countSize + (Self.resumable(slot)?.stateSizeBound(shape: shape) ?? 0) }
        return n
    }

    // MARK: - Parts

    static func resumable(_ slot: Slot) -> (any ResumableStrategy)? { slot.strategy as? any ResumableStrategy }

    static func emissionCode(_ e: EmissionMode) -> UInt8 {
        switch e {
        case .all: return 0
        case .new: return 1
        }
    }

    /// The noise source's kind code, a tag naming it in errors (a custom source's type, so that a
    /// restore over a source of another type fails), and its resumable view.
    var noiseSource: (kind: UInt8, tag: String, source: (any ResumableRandomSource)?) {
        switch noise {
        case .seeded(let r): return (0, "seeded", r)
        case .tape(let r): return (1, "tape", r)
        case .custom(let r): return (2, String(reflecting: type(of: r)), r as? any ResumableRandomSource)
        }
    }

    private mutating func decodeState(_ bytes: [UInt8]) throws {
        var r = StateReader(bytes)
        let magic = try (0..<Self.stateMagic.count).map { _ in try r.u8("magic") }
        guard magic == Self.stateMagic else { throw StateCodingError("not a vidrd stream state (magic \(magic))") }
        let version = try r.u32("format version")
        guard version == Self.stateFormatVersion else {
            throw StateCodingError("format version \(version), this build reads \(Self.stateFormatVersion)")
        }

        // The chain first: restoring into another chain is the likeliest mistake and the clearest to name.
        let count = try r.count("chain", max: 1024)
        var saved: [(name: String, version: UInt32)] = []
        for i in 0..<count { saved.append((try r.string("chain name \(i)", maxBytes: 1024), try r.u32("chain version \(i)"))) }
        guard saved.map(\.name) == chain else {
            throw StateCodingError("saved for chain \(saved.map(\.name).joined(separator: ",")), this stream's chain is \(chain.joined(separator: ","))")
        }
        var strategies: [any ResumableStrategy] = []
        for (slot, s) in zip(slots, saved) {
            guard let rs = Self.resumable(slot) else { throw StateCodingError("strategy \"\(slot.name)\" cannot be restored") }
            let v = type(of: rs).stateFormatVersion
            guard s.version == v else {
                throw StateCodingError("strategy \"\(slot.name)\" state format version \(s.version), this build reads \(v)")
            }
            strategies.append(rs)
        }

        let names = ["frames", "channels", "height", "width", "prompt frames", "steps"]
        let mine = [shape.frames, shape.channels, shape.height, shape.width, shape.promptFrames, shape.steps]
        for (name, expected) in zip(names, mine) {
            let v = Int(try r.u32(name))
            guard v == expected else { throw StateCodingError("saved for \(v) \(name), this stream has \(expected)") }
        }
        let emission = try r.u8("emission mode")
        guard emission == Self.emissionCode(configuration.emission) else {
            throw StateCodingError("saved with another emission mode (code \(emission)), this stream emits \(configuration.emission.rawValue)")
        }

        let index = try r.int("clip index", in: 0...Self.maxSavedClipIndex)
        let emitted = try r.int("frames emitted", in: 0...(index * shape.frames))
        let hasPrevious = try r.bool("previous-clip flag")
        guard hasPrevious == (index > 0) else {
            throw StateCodingError(index > 0 ? "clip index \(index) without the previous clip's record" : "a previous clip's record before clip 0")
        }
        var record: ClipRecord? = nil
        if hasPrevious {
            let pi = try r.int("previous clip index", in: 0...Self.maxSavedClipIndex)
            guard pi == index - 1 else { throw StateCodingError("previous clip is \(pi), expected \(index - 1)") }
            let latentCount = shape.latentShape.reduce(1, *)
            let initialNoise = try r.f32Array("previous initial noise", count: latentCount)
            let latents = try r.f32Array("previous latents", count: latentCount)
            let frames = try r.u32Array("previous emitted frames", max: shape.frames).map(Int.init)
            guard zip(frames, frames.dropFirst()).allSatisfy({ $0 < $1 }), frames.allSatisfy({ $0 < shape.frames }) else {
                throw StateCodingError("previous emitted frames \(frames) are not strictly increasing indices in 0..<\(shape.frames)")
            }
            record = ClipRecord(index: pi, initialNoise: Tensor(shape: shape.latentShape, scalars: initialNoise),
                                latents: Tensor(shape: shape.latentShape, scalars: latents), emitted: frames)
        }

        let (kind, tag, source) = noiseSource
        let savedKind = try r.u8("noise source kind")
        let savedTag = try r.string("noise source", maxBytes: 4096)
        guard savedKind == kind, savedTag == tag else {
            throw StateCodingError("saved with noise source \(savedTag), this stream draws from \(tag)")
        }
        guard var rs = source else { throw StateCodingError("noise source \(tag) cannot be restored") }
        var section = try r.section("noise source state", maxBytes: rs.stateSizeBound)
        try rs.restoreState(from: &section)
        try section.finish("the noise source state")
        let restoredNoise: StreamNoiseSource
        switch noise {
        case .seeded:
            guard let s = rs as? SeededRandomSource else { throw StateCodingError("seeded source changed type") }
            restoredNoise = .seeded(s)
        case .tape:
            guard let s = rs as? TapeRandomSource else { throw StateCodingError("tape source changed type") }
            restoredNoise = .tape(s)
        case .custom:
            restoredNoise = .custom(rs)
        }

        var restoredSlots = slots
        for (i, var s) in strategies.enumerated() {
            let name = slots[i].name
            var section = try r.section("strategy \"\(name)\" state", maxBytes: s.stateSizeBound(shape: shape))
            do {
                try s.restoreState(from: &section, shape: shape)
                try section.finish("the state")
            } catch let e as StateCodingError {
                throw StateCodingError("strategy \"\(name)\": \(e.message)")
            } catch {
                throw StateCodingError("strategy \"\(name)\": \(error)")
            }
            restoredSlots[i].strategy = s
        }
        try r.finish("the stream state")

        slots = restoredSlots
        noise = restoredNoise
        previous = record
        pendingFresh = nil
        pendingExtra = []
        clipIndex = index
        framesEmitted = Int64(emitted)
    }
}
