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

    public init(path: String) throws {
        file = try SafeTensorsFile(path: path)
        self.path = path
        var n = 0
        while file.entries["noise.\(n)"] != nil { n += 1 }
        guard n > 0 else {
            throw ModelError.invalidInput("\(path): not a noise tape (no tensor \"noise.0\")")
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

/// Records every draw of another source, so that a seeded stream can be written out as a tape.
public struct RecordingRandomSource<Base: RandomSource>: RandomSource {
    public var base: Base
    public private(set) var recorded: [Tensor] = []

    public init(_ base: Base) { self.base = base }

    public mutating func standardNormal(shape: [Int]) throws -> Tensor {
        let t = try base.standardNormal(shape: shape)
        recorded.append(t)
        return t
    }

    public mutating func standardNormal(count: Int) -> [Float] {
        let s = base.standardNormal(count: count)
        recorded.append(Tensor(shape: [count], scalars: s))
        return s
    }
}

extension RecordingRandomSource: Sendable where Base: Sendable {}
