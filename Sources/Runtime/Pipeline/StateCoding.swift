/// A little-endian binary writer for saved stream state (`VideoStream.saveState`). Floats are
/// written as their bit patterns so that a restored stream continues bit for bit; arrays and
/// strings carry a `u32` count so that a reader can check it against the shape it expects before
/// it allocates anything.
public struct StateWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func u8(_ v: UInt8) { bytes.append(v) }

    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }

    public mutating func u32(_ v: UInt32) {
        for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * k))) }
    }

    public mutating func u64(_ v: UInt64) {
        for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * k))) }
    }

    public mutating func f32(_ v: Float) { u32(v.bitPattern) }

    public mutating func f64(_ v: Double) { u64(v.bitPattern) }

    /// A count as `u32`; every count the state holds is bounded by stream limits far below 2³².
    public mutating func count(_ n: Int) {
        precondition(n >= 0 && n <= Int(UInt32.max), "count \(n) does not fit the state format")
        u32(UInt32(n))
    }

    /// UTF-8, count-prefixed.
    public mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        count(utf8.count)
        bytes.append(contentsOf: utf8)
    }

    /// Count-prefixed bytes (a nested section).
    public mutating func section(_ b: [UInt8]) {
        count(b.count)
        bytes.append(contentsOf: b)
    }

    public mutating func u32Array(_ a: [UInt32]) {
        count(a.count)
        bytes.reserveCapacity(bytes.count + 4 * a.count)
        for v in a { u32(v) }
    }

    public mutating func f32Array(_ a: [Float]) {
        count(a.count)
        bytes.reserveCapacity(bytes.count + 4 * a.count)
        for v in a { u32(v.bitPattern) }
    }

    /// Sizes of what the methods above write, for size bounds.
    public static let countSize = 4
    public static func stringSize(_ s: String) -> Int { 4 + s.utf8.count }
    public static func f32ArraySize(_ count: Int) -> Int { 4 + 4 * count }
    public static func u32ArraySize(_ count: Int) -> Int { 4 + 4 * count }
}

/// Why saved state could not be read: truncated, a count that does not match the stream, bytes
/// left over, a non-finite float where the state holds noise or latents.
public struct StateCodingError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reads what `StateWriter` wrote. Every read checks the bytes left first and every array read
/// takes the count the caller's shape implies, so a damaged or hostile blob throws instead of
/// trapping or allocating more than the stream's own state would need.
public struct StateReader: Sendable {
    private let bytes: [UInt8]
    private var offset: Int
    private let end: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        offset = 0
        end = bytes.count
    }

    private init(bytes: [UInt8], offset: Int, end: Int) {
        self.bytes = bytes
        self.offset = offset
        self.end = end
    }

    public var remaining: Int { end - offset }

    private mutating func take(_ n: Int, _ what: String) throws -> Int {
        guard n >= 0, n <= remaining else {
            throw StateCodingError("truncated at \(what): needs \(n) bytes, \(remaining) left")
        }
        let start = offset
        offset += n
        return start
    }

    public mutating func u8(_ what: String) throws -> UInt8 {
        bytes[try take(1, what)]
    }

    public mutating func bool(_ what: String) throws -> Bool {
        switch try u8(what) {
        case 0: return false
        case 1: return true
        case let v: throw StateCodingError("\(what): \(v) is not a boolean (0 or 1)")
        }
    }

    public mutating func u32(_ what: String) throws -> UInt32 {
        let s = try take(4, what)
        var v: UInt32 = 0
        for k in 0..<4 { v |= UInt32(bytes[s + k]) << (8 * k) }
        return v
    }

    public mutating func u64(_ what: String) throws -> UInt64 {
        let s = try take(8, what)
        var v: UInt64 = 0
        for k in 0..<8 { v |= UInt64(bytes[s + k]) << (8 * k) }
        return v
    }

    /// A `u64` that must be in `range` (stream counters).
    public mutating func int(_ what: String, in range: ClosedRange<Int>) throws -> Int {
        let v = try u64(what)
        guard v <= UInt64(Int.max), range.contains(Int(v)) else {
            throw StateCodingError("\(what) is \(v), expected \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(v)
    }

    public mutating func f32(_ what: String) throws -> Float { Float(bitPattern: try u32(what)) }

    public mutating func f64(_ what: String) throws -> Double { Double(bitPattern: try u64(what)) }

    /// A count of at most `max`.
    public mutating func count(_ what: String, max: Int) throws -> Int {
        let n = Int(try u32("\(what) count"))
        guard n <= max else { throw StateCodingError("\(what) count is \(n), at most \(max) expected") }
        return n
    }

    /// A count that must be exactly `expected`.
    public mutating func count(_ what: String, expected: Int) throws {
        let n = Int(try u32("\(what) count"))
        guard n == expected else { throw StateCodingError("\(what) count is \(n), expected \(expected)") }
    }

    public mutating func string(_ what: String, maxBytes: Int = 4096) throws -> String {
        let n = try count(what, max: maxBytes)
        let s = try take(n, what)
        return String(decoding: bytes[s..<(s + n)], as: UTF8.self)
    }

    /// A count-prefixed nested section as its own reader (of at most `maxBytes`).
    public mutating func section(_ what: String, maxBytes: Int) throws -> StateReader {
        let n = try count(what, max: maxBytes)
        let s = try take(n, what)
        return StateReader(bytes: bytes, offset: s, end: s + n)
    }

    /// Exactly `count` values; with `finite`, NaN and ±inf are rejected (noise and latents are
    /// always finite, and a non-finite value would poison every later clip).
    public mutating func f32Array(_ what: String, count expected: Int, finite: Bool = true) throws -> [Float] {
        try count(what, expected: expected)
        let s = try take(4 * expected, what)
        var out = [Float](repeating: 0, count: expected)
        for i in 0..<expected {
            var v: UInt32 = 0
            for k in 0..<4 { v |= UInt32(bytes[s + 4 * i + k]) << (8 * k) }
            out[i] = Float(bitPattern: v)
            if finite, !out[i].isFinite {
                throw StateCodingError("\(what): value \(i) is \(out[i]), saved state holds finite values only")
            }
        }
        return out
    }

    /// At most `max` values, for state whose size varies (empty before the first clip, full after).
    public mutating func f32Array(_ what: String, max: Int, finite: Bool = true) throws -> [Float] {
        let n = try count(what, max: max)
        let s = try take(4 * n, what)
        var out: [Float] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            var v: UInt32 = 0
            for k in 0..<4 { v |= UInt32(bytes[s + 4 * i + k]) << (8 * k) }
            let x = Float(bitPattern: v)
            if finite, !x.isFinite { throw StateCodingError("\(what): value \(i) is \(x), saved state holds finite values only") }
            out.append(x)
        }
        return out
    }

    /// Exactly `count` values.
    public mutating func u32Array(_ what: String, count expected: Int) throws -> [UInt32] {
        try count(what, expected: expected)
        let s = try take(4 * expected, what)
        return (0..<expected).map { i in
            var v: UInt32 = 0
            for k in 0..<4 { v |= UInt32(bytes[s + 4 * i + k]) << (8 * k) }
            return v
        }
    }

    /// At most `max` values (the count is read first and checked before anything is allocated).
    public mutating func u32Array(_ what: String, max: Int) throws -> [UInt32] {
        let n = try count(what, max: max)
        let s = try take(4 * n, what)
        return (0..<n).map { i in
            var v: UInt32 = 0
            for k in 0..<4 { v |= UInt32(bytes[s + 4 * i + k]) << (8 * k) }
            return v
        }
    }

    /// Throws when bytes are left: a blob longer than its parts is not the state it claims to be.
    public func finish(_ what: String) throws {
        guard remaining == 0 else { throw StateCodingError("\(remaining) trailing bytes after \(what)") }
    }
}

/// A noise source whose position can be saved and restored, so a stream that draws from it can be
/// resumed in another process. A source that does not conform makes its stream non-resumable.
public protocol ResumableRandomSource: RandomSource, Sendable {
    /// Writes the position: everything that decides the next draws (not what the configuration
    /// already fixes, such as a tape's path).
    func saveState(into writer: inout StateWriter)
    /// Replaces the position with one `saveState` wrote for a source made the same way.
    mutating func restoreState(from reader: inout StateReader) throws
    /// The most bytes `saveState` writes.
    var stateSizeBound: Int { get }
}
