import Foundation

/// A recorded noise tape: every Gaussian draw of a stream, in order, so that the stream can be
/// replayed here or in another framework (see docs/PLUGINS.md, "Noise tape").
///
/// File format: safetensors, fp32 tensors named `noise.0`, `noise.1`, … (decimal, no padding), in
/// draw order, metadata `format = vidrd-noise-tape/1`. For a `VideoStream` the order is one tensor
/// per clip, of the clip's full latent shape `[1, C, N, h, w]`, standard normal.
public struct NoiseTape: Sendable {
    public static let format = "vidrd-noise-tape/1"
    public let path: String
    public let count: Int
    private let file: SafeTensorsFile

    /// Opens a tape and checks its layout up front, so a file of another kind fails here, naming
    /// what it holds, rather than at the first draw.
    public init(path: String) throws {
        file = try SafeTensorsFile(path: path)
        self.path = path
        let names = file.entries.keys.sorted()
        func found() -> String {
            let shown = names.prefix(5).map { "\"\($0)\"" }.joined(separator: ", ")
            return names.isEmpty ? "no tensors" : "tensors \(shown)\(names.count > 5 ? ", … (\(names.count))" : "")"
        }
        guard let format = file.metadata["format"] else {
            throw ModelError.invalidInput(
                "\(path): not a noise tape: no \"format\" metadata (expected \"\(Self.format)\"); it holds \(found())")
        }
        guard format == Self.format else {
            throw ModelError.invalidInput("\(path): noise tape format is \"\(format)\", this build reads \"\(Self.format)\"")
        }
        var n = 0
        while file.entries["noise.\(n)"] != nil { n += 1 }
        guard n > 0 else {
            throw ModelError.invalidInput("\(path): \(Self.format) tape without \"noise.0\"; it holds \(found())")
        }
        // A gap (noise.0, noise.2) or a stray tensor would otherwise be skipped without a word.
        if let stray = names.first(where: { name in
            guard name.hasPrefix("noise."), let k = Int(name.dropFirst(6)), String(k) == name.dropFirst(6) else { return true }
            return k >= n
        }) {
            throw ModelError.invalidInput(
                "\(path): \(Self.format) tapes hold only noise.0 … noise.K without gaps; \"\(stray)\" follows noise.0 … noise.\(n - 1)")
        }
        for (name, entry) in file.entries.sorted(by: { $0.key < $1.key }) where entry.dtype != .f32 {
            throw ModelError.invalidInput("\(path): \(name) is \(entry.dtype.rawValue); \(Self.format) tapes hold F32 tensors")
        }
        count = n
    }

    public func tensor(_ index: Int) throws -> Tensor {
        guard index >= 0, index < count else {
            throw ModelError.invalidInput("\(path): noise tape has \(count) tensors, draw \(index) asked for")
        }
        return try file.tensor("noise.\(index)")
    }

    public static func write(_ tensors: [Tensor], to path: String, metadata: [String: String] = [:]) throws {
        var meta = metadata
        meta["format"] = format
        try SafeTensorsWriter.write(tensors.enumerated().map { ("noise.\($0.offset)", $0.element) }, to: path, metadata: meta)
    }
}

/// Replays a `NoiseTape`, one recorded tensor per draw.
public struct TapeRandomSource: RandomSource, Sendable {
    public let tape: NoiseTape
    public private(set) var position = 0

    public init(tape: NoiseTape) { self.tape = tape }
    public init(path: String) throws { tape = try NoiseTape(path: path) }

    public mutating func standardNormal(shape: [Int]) throws -> Tensor {
        let t = try tape.tensor(position)
        guard t.shape == shape else {
            throw ModelError.invalidInput("\(tape.path): noise.\(position) has shape \(t.shape), the stream draws \(shape)")
        }
        position += 1
        return t
    }

    /// Draws by count only: the next tensor must hold exactly `count` values (traps otherwise);
    /// prefer `standardNormal(shape:)`, which throws.
    public mutating func standardNormal(count: Int) -> [Float] {
        let t = try! tape.tensor(position)
        precondition(t.count == count, "\(tape.path): noise.\(position) holds \(t.count) values, \(count) drawn")
        position += 1
        return t.scalars
    }
}

extension TapeRandomSource: ResumableRandomSource {
    /// The position and the tape's length: the path comes from the configuration, and the length
    /// catches a restore over another tape at that path.
    public func saveState(into writer: inout StateWriter) {
        writer.u64(UInt64(position))
        writer.u64(UInt64(tape.count))
    }

    public mutating func restoreState(from reader: inout StateReader) throws {
        let p = try reader.int("tape position", in: 0...Int(UInt32.max))
        let n = try reader.int("tape length", in: 0...Int(UInt32.max))
        guard n == tape.count else {
            throw StateCodingError("saved tape holds \(n) tensors, \(tape.path) holds \(tape.count)")
        }
        guard p <= n else { throw StateCodingError("tape position \(p) is past the tape's \(n) tensors") }
        position = p
    }

    public var stateSizeBound: Int { 16 }
}
