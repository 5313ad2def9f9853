// Tag-length-value encoding of control-message payloads (docs/PROTOCOL.md §4).
//
// A payload is a sequence of fields; each field is `tag u16 | length u32 | value[length]`,
// big-endian. Unknown tags are skipped. Known fields are checked strictly.

/// Builds a TLV payload. Fields are written in the order the caller writes them
/// (the codec writes ascending tags).
struct TLVWriter {
    var bytes: [UInt8] = []

    private mutating func head(_ tag: UInt16, _ length: Int) {
        appendBigEndian(tag, to: &bytes)
        appendBigEndian(UInt32(length), to: &bytes)
    }

    mutating func u8(_ tag: UInt16, _ value: UInt8) {
        head(tag, 1)
        bytes.append(value)
    }

    mutating func bool(_ tag: UInt16, _ value: Bool) { u8(tag, value ? 1 : 0) }

    mutating func u16(_ tag: UInt16, _ value: UInt16) {
        head(tag, 2)
        appendBigEndian(value, to: &bytes)
    }

    mutating func u32(_ tag: UInt16, _ value: UInt32) {
        head(tag, 4)
        appendBigEndian(value, to: &bytes)
    }

    mutating func u64(_ tag: UInt16, _ value: UInt64) {
        head(tag, 8)
        appendBigEndian(value, to: &bytes)
    }

    mutating func i64(_ tag: UInt16, _ value: Int64) {
        head(tag, 8)
        appendBigEndian(value, to: &bytes)
    }

    mutating func f64(_ tag: UInt16, _ value: Double) {
        head(tag, 8)
        appendBigEndian(value.bitPattern, to: &bytes)
    }

    mutating func string(_ tag: UInt16, _ value: String) {
        head(tag, value.utf8.count)
        bytes.append(contentsOf: value.utf8)
    }

    mutating func raw(_ tag: UInt16, _ value: [UInt8]) {
        head(tag, value.count)
        bytes.append(contentsOf: value)
    }

    /// Writes a nested TLV message as the value of `tag`.
    mutating func nested(_ tag: UInt16, _ inner: TLVWriter) {
        raw(tag, inner.bytes)
    }
}

/// One field found by `TLVReader`: its tag and the byte range of its value in the buffer.
struct TLVField {
    let tag: UInt16
    let range: Range<Int>
}

/// Walks the fields of one TLV payload (or nested message) and decodes values strictly.
struct TLVReader {
    let buf: [UInt8]
    private var pos: Int
    private let end: Int
    /// Message name for error texts, e.g. `OPEN_SESSION` or `OPEN_SESSION.chain.strategy`.
    let context: String
    private var seen: UInt64 = 0

    init(_ buf: [UInt8], _ range: Range<Int>, context: String) {
        self.buf = buf
        self.pos = range.lowerBound
        self.end = range.upperBound
        self.context = context
    }

    func fail(_ kind: ProtocolError.Kind, _ text: String) -> ProtocolError {
        ProtocolError(.invalidArgument, kind, "\(context): \(text)")
    }

    /// The next field, or nil at the end of the payload.
    mutating func next() throws(ProtocolError) -> TLVField? {
        if pos == end { return nil }
        guard end - pos >= 6 else {
            throw fail(.truncated, "\(end - pos) trailing byte(s) are too few for a field header")
        }
        let tag = UInt16(buf[pos]) << 8 | UInt16(buf[pos + 1])
        let length = Int(readBigEndian(UInt32.self, buf, pos + 2))
        pos += 6
        guard length <= end - pos else {
            throw fail(.truncated, "field \(tag) declares \(length) bytes but only \(end - pos) remain")
        }
        let field = TLVField(tag: tag, range: pos..<(pos + length))
        pos += length
        return field
    }

    /// Marks a non-repeated field as seen; throws if it occurred before. Known tags are < 64.
    mutating func once(_ f: TLVField, _ name: String) throws(ProtocolError) {
        let bit: UInt64 = 1 << UInt64(f.tag & 63)
        if seen & bit != 0 { throw fail(.duplicateField, "field \(name) (tag \(f.tag)) occurs more than once") }
        seen |= bit
    }

    func fixed(_ f: TLVField, _ size: Int, _ name: String) throws(ProtocolError) {
        guard f.range.count == size else {
            throw fail(.badFieldLength, "field \(name) (tag \(f.tag)) must be \(size) byte(s), is \(f.range.count)")
        }
    }

    func u8(_ f: TLVField, _ name: String) throws(ProtocolError) -> UInt8 {
        try fixed(f, 1, name)
        return buf[f.range.lowerBound]
    }

    func bool(_ f: TLVField, _ name: String) throws(ProtocolError) -> Bool {
        let v = try u8(f, name)
        guard v <= 1 else { throw fail(.valueOutOfRange, "field \(name) is a bool and must be 0 or 1, is \(v)") }
        return v == 1
    }

    func u16(_ f: TLVField, _ name: String) throws(ProtocolError) -> UInt16 {
        try fixed(f, 2, name)
        return readBigEndian(UInt16.self, buf, f.range.lowerBound)
    }

    func u32(_ f: TLVField, _ name: String) throws(ProtocolError) -> UInt32 {
        try fixed(f, 4, name)
        return readBigEndian(UInt32.self, buf, f.range.lowerBound)
    }

    func u32(_ f: TLVField, _ name: String, in range: ClosedRange<UInt32>) throws(ProtocolError) -> UInt32 {
        let v = try u32(f, name)
        guard range.contains(v) else {
            throw fail(.valueOutOfRange, "field \(name) = \(v) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    func u64(_ f: TLVField, _ name: String) throws(ProtocolError) -> UInt64 {
        try fixed(f, 8, name)
        return readBigEndian(UInt64.self, buf, f.range.lowerBound)
    }

    func i64(_ f: TLVField, _ name: String) throws(ProtocolError) -> Int64 {
        Int64(bitPattern: try u64(f, name))
    }

    /// A finite IEEE-754 double (NaN and infinities are rejected everywhere in the protocol).
    func f64(_ f: TLVField, _ name: String) throws(ProtocolError) -> Double {
        let v = Double(bitPattern: try u64(f, name))
        guard v.isFinite else { throw fail(.valueOutOfRange, "field \(name) must be a finite number, is \(v)") }
        return v
    }

    func bytes(_ f: TLVField, _ name: String, min: Int = 0, max: Int) throws(ProtocolError) -> [UInt8] {
        guard f.range.count >= min else {
            throw fail(.valueOutOfRange, "field \(name) is \(f.range.count) bytes, at least \(min) required")
        }
        guard f.range.count <= max else {
            throw fail(.valueOutOfRange, "field \(name) is \(f.range.count) bytes, at most \(max) allowed")
        }
        return Array(buf[f.range])
    }

    func string(_ f: TLVField, _ name: String, min: Int = 0, max: Int) throws(ProtocolError) -> String {
        let n = f.range.count
        guard n >= min, n <= max else {
            throw fail(.valueOutOfRange, "field \(name) is \(n) bytes, must be \(min)...\(max)")
        }
        guard let s = decodeUTF8(buf, f.range) else {
            throw fail(.invalidUTF8, "field \(name) is not valid UTF-8")
        }
        return s
    }

    /// A strategy or parameter name: `[A-Za-z][A-Za-z0-9_.-]{0,63}`.
    func name(_ f: TLVField, _ name: String) throws(ProtocolError) -> String {
        let n = f.range.count
        guard n >= 1, n <= ProtocolLimits.maxNameBytes, isValidName(buf[f.range]) else {
            throw fail(.invalidName, "field \(name) must match [A-Za-z][A-Za-z0-9_.-]{0,63}")
        }
        return String(decoding: buf[f.range], as: UTF8.self)
    }

    func nested(_ f: TLVField, _ name: String) -> TLVReader {
        TLVReader(buf, f.range, context: "\(context).\(name)")
    }

    func missing(_ tag: UInt16, _ name: String) -> ProtocolError {
        fail(.missingField, "required field \(name) (tag \(tag)) is missing")
    }

    func tooMany(_ f: TLVField, _ name: String, max: Int) -> ProtocolError {
        fail(.duplicateField, "field \(name) (tag \(f.tag)) may occur at most \(max) times")
    }
}

@inline(__always)
func readBigEndian<T: FixedWidthInteger>(_: T.Type, _ buf: [UInt8], _ at: Int) -> T {
    var v: T = 0
    for i in 0..<MemoryLayout<T>.size { v = v << 8 | T(buf[at + i]) }
    return v
}

/// Names of strategies and parameters: an ASCII letter, then letters, digits, `_`, `.`, `-`.
func isValidName<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
    guard let first = bytes.first, bytes.count <= ProtocolLimits.maxNameBytes else { return false }
    func letter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
    guard letter(first) else { return false }
    for b in bytes.dropFirst() {
        guard letter(b) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2E || b == 0x2D else { return false }
    }
    return true
}

func isValidName(_ s: String) -> Bool { isValidName(Array(s.utf8)) }

/// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
func decodeUTF8(_ buf: [UInt8], _ range: Range<Int>) -> String? {
    var i = range.lowerBound
    let end = range.upperBound
    while i < end {
        let b0 = buf[i]
        if b0 < 0x80 { i += 1; continue }
        let need: Int
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
        switch b0 {
        case 0xC2...0xDF: need = 1
        case 0xE0: need = 2; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: need = 2
        case 0xED: need = 2; hi = 0x9F
        case 0xF0: need = 3; lo = 0x90
        case 0xF1...0xF3: need = 3
        case 0xF4: need = 3; hi = 0x8F
        default: return nil
        }
        guard end - i > need else { return nil }
        let b1 = buf[i + 1]
        guard b1 >= lo, b1 <= hi else { return nil }
        var k = 2
        while k <= need {
            guard buf[i + k] & 0xC0 == 0x80 else { return nil }
            k += 1
        }
        i += need + 1
    }
    return String(decoding: buf[range], as: UTF8.self)
}

/// `s` cut to at most `maxBytes` UTF-8 bytes at a scalar boundary ("..." appended when cut).
func truncatedUTF8(_ s: String, maxBytes: Int) -> String {
    if s.utf8.count <= maxBytes { return s }
    var out = ""
    var used = 0
    for scalar in s.unicodeScalars {
        let n = String(scalar).utf8.count
        if used + n > maxBytes - 3 { break }
        out.unicodeScalars.append(scalar)
        used += n
    }
    return out + "..."
}
