import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Element types a safetensors file may hold. Weights load as F32, F16 or BF16; integer and
/// F64 tensors are accepted so that reference fixtures (token ids, timesteps) can be read too.
public enum SafeTensorsDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64", i64 = "I64", i32 = "I32"

    var byteSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .f64, .i64: return 8
        }
    }

    /// The 16-bit float formats, which layers may keep as they are.
    var halfFormat: HalfFormat? {
        switch self {
        case .f16: .f16
        case .bf16: .bf16
        default: nil
        }
    }
}

/// A memory-mapped safetensors file (https://github.com/huggingface/safetensors format):
/// 8-byte little-endian header length, a JSON header, then the raw little-endian data.
///
/// Everything in the header is validated before any tensor is read: offsets inside the data
/// area, byte lengths equal to shape × dtype size, no overlaps. Tensors are copied out on access
/// (converted to fp32, or 16-bit values as they are), and a loader hands a tensor's pages back
/// once it has read them (`release`), so memory holds the tensors a model keeps, not the file too.
public final class SafeTensorsFile: @unchecked Sendable {
    // Immutable after init; the mapping is released in deinit.
    public struct Entry: Sendable {
        public let name: String
        public let dtype: SafeTensorsDType
        public let shape: [Int]
        let begin: Int
        let end: Int
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let base: UnsafeRawPointer?
    private let mappedLength: Int
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw WeightError.cannotOpen(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw WeightError.cannotOpen(file: path, reason: String(cString: strerror(errno))) }
        let size = Int(st.st_size)
        guard size >= 8 else { throw WeightError.truncated(file: path, detail: "\(size) bytes, shorter than the 8-byte header length") }
        guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw WeightError.cannotOpen(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        let raw = UnsafeRawPointer(map)
        var ok = false
        defer { if !ok { munmap(map, size) } }

        let headerLength = Int(UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)))
        guard headerLength <= 100_000_000 else {
            throw WeightError.corruptHeader(file: path, detail: "header length \(headerLength) is implausible")
        }
        guard 8 + headerLength <= size else {
            throw WeightError.truncated(file: path, detail: "header says \(headerLength) bytes but the file has \(size - 8) after the length")
        }
        let headerData = Data(bytes: raw + 8, count: headerLength)
        guard let json = try? JSONSerialization.jsonObject(with: headerData), let dict = json as? [String: Any] else {
            throw WeightError.corruptHeader(file: path, detail: "header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataLength = size - dataStart
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in dict {
            if name == "__metadata__" {
                if let m = value as? [String: Any] {
                    for (k, v) in m { metadata[k] = "\(v)" }
                }
                continue
            }
            guard let info = value as? [String: Any] else {
                throw WeightError.badTensor(file: path, tensor: name, detail: "header entry is not an object")
            }
            guard let dtypeName = info["dtype"] as? String else {
                throw WeightError.badTensor(file: path, tensor: name, detail: "missing dtype")
            }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw WeightError.unsupportedDType(file: path, tensor: name, dtype: dtypeName)
            }
            guard let shapeAny = info["shape"] as? [Any], let shape = Self.integers(shapeAny), shape.allSatisfy({ $0 >= 0 }) else {
                throw WeightError.badTensor(file: path, tensor: name, detail: "shape is not a list of non-negative integers")
            }
            guard let offsAny = info["data_offsets"] as? [Any], let offs = Self.integers(offsAny), offs.count == 2,
                  offs[0] >= 0, offs[1] >= offs[0] else {
                throw WeightError.badTensor(file: path, tensor: name, detail: "data_offsets must be [begin, end] with begin <= end")
            }
            let elements = shape.reduce(1, *)
            guard offs[1] - offs[0] == elements * dtype.byteSize else {
                throw WeightError.badTensor(file: path, tensor: name,
                    detail: "holds \(offs[1] - offs[0]) bytes but shape \(shape) of \(dtypeName) needs \(elements * dtype.byteSize)")
            }
            guard offs[1] <= dataLength else {
                throw WeightError.truncated(file: path,
                    detail: "tensor \"\(name)\" ends at byte \(offs[1]) of the data area, which has only \(dataLength)")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, begin: offs[0], end: offs[1])
        }
        let sorted = entries.values.filter { $0.end > $0.begin }.sorted { $0.begin < $1.begin }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.begin < a.end {
            throw WeightError.badTensor(file: path, tensor: b.name, detail: "overlaps tensor \"\(a.name)\"")
        }
        self.entries = entries
        self.metadata = metadata
        self.base = raw
        self.mappedLength = size
        self.dataStart = dataStart
        ok = true
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), mappedLength) }
    }

    private static func integers(_ values: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in values {
            if let i = v as? Int { out.append(i) } else if let n = v as? NSNumber { out.append(n.intValue) } else { return nil }
        }
        return out
    }

    public var names: [String] { entries.keys.sorted() }

    /// The tensor converted to fp32 (integers are converted by value).
    public func floats(_ name: String) throws -> [Float] {
        guard let e = entries[name] else {
            throw WeightError.badTensor(file: path, tensor: name, detail: "not in file")
        }
        return Self.convert(base! + dataStart + e.begin, dtype: e.dtype, count: e.shape.reduce(1, *))
    }

    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else {
            throw WeightError.badTensor(file: path, tensor: name, detail: "not in file")
        }
        return Tensor(shape: e.shape, scalars: try floats(name))
    }

    /// A 16-bit float tensor's raw values (F16 or BF16), without widening.
    func halves(_ name: String) throws -> [UInt16] {
        guard let e = entries[name], e.dtype.halfFormat != nil else {
            throw WeightError.badTensor(file: path, tensor: name, detail: "not a 16-bit float tensor in this file")
        }
        let count = e.shape.reduce(1, *)
        let p = base! + dataStart + e.begin
        return [UInt16](unsafeUninitializedCapacity: count) { buf, initialized in
            for i in 0..<count { buf[i] = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
            initialized = count
        }
    }

    /// Drops the mapped pages that lie wholly inside a tensor already read, so that a load does
    /// not hold the whole file and the model at once (the pages are clean and file-backed: a
    /// later read faults them in again).
    func release(_ name: String) {
        guard let e = entries[name], let base else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (dataStart + e.begin + page - 1) / page * page
        let last = (dataStart + e.end) / page * page
        guard last > first else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + first), last - first, MADV_DONTNEED)
    }

    /// Integer tensors (token ids, timesteps) as Int64.
    public func integers(_ name: String) throws -> [Int64] {
        guard let e = entries[name] else {
            throw WeightError.badTensor(file: path, tensor: name, detail: "not in file")
        }
        let count = e.shape.reduce(1, *)
        let p = base! + dataStart + e.begin
        switch e.dtype {
        case .i64: return (0..<count).map { Int64(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        case .i32: return (0..<count).map { Int64(Int32(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
        default: return try floats(name).map { Int64($0) }
        }
    }

    static func convert(_ p: UnsafeRawPointer, dtype: SafeTensorsDType, count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buf, initialized in
            switch dtype {
            case .f32:
                for i in 0..<count { buf[i] = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
            case .f16, .bf16:
                // The one widening the layers' 16-bit weights are defined by (HalfFormat).
                let format: HalfFormat = dtype == .f16 ? .f16 : .bf16
                for i in 0..<count { buf[i] = format.widen(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
            case .f64:
                for i in 0..<count { buf[i] = Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))) }
            case .i64:
                for i in 0..<count { buf[i] = Float(Int64(littleEndian: p.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) }
            case .i32:
                for i in 0..<count { buf[i] = Float(Int32(littleEndian: p.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))) }
            }
            initialized = count
        }
    }
}

/// IEEE half → single, bit-exact (handles subnormals, infinities and NaN) without relying on
/// platform `Float16` support.
@inline(__always)
func float16ToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = Int((h >> 10) & 0x1F)
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        if mantissa == 0 { return Float(bitPattern: sign) }
        // Subnormal: value = mantissa * 2^-24.
        let v = Float(mantissa) * 5.9604644775390625e-08
        return sign != 0 ? -v : v
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
}

/// Writes fp32 tensors as a safetensors file, atomically (temporary file + rename) so that a
/// crash never leaves a half-written file under the final name.
public enum SafeTensorsWriter {
    public static func write(_ tensors: [(name: String, tensor: Tensor)], to path: String,
                             metadata: [String: String] = [:]) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for (name, t) in tensors {
            let bytes = t.count * 4
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }  // pad with spaces to align the data
        var out = Data()
        out.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, t) in tensors {
            t.scalars.withUnsafeBytes { out.append(contentsOf: $0) }  // little-endian hosts only (x86-64, arm64)
        }
        try AtomicFile.write(out, to: path)
    }
}

/// Write-then-rename so readers never observe a partially written file.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        do {
            try data.write(to: tmp)
            if rename(tmp.path, url.path) != 0 {
                let reason = String(cString: strerror(errno))
                try? FileManager.default.removeItem(at: tmp)
                throw WeightError.cannotOpen(file: path, reason: "rename failed: \(reason)")
            }
        } catch let e as WeightError {
            throw e
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw WeightError.cannotOpen(file: path, reason: "\(error)")
        }
    }
}
