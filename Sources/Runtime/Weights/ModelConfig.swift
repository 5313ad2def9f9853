import Foundation

/// A component's `config.json` with typed accessors. diffusers omits keys that hold their
/// defaults, so every accessor takes the library's default; a key of the wrong type is an error
/// naming the file and the key.
public struct ModelConfig: Sendable, Equatable {
    public let path: String
    private let values: [String: JSONValue]

    private init(path: String, values: [String: JSONValue]) {
        self.path = path
        self.values = values
    }

    /// The object under `key` as a config of its own (named `path: key` in errors); nil when absent.
    public func object(_ key: String) throws -> ModelConfig? {
        switch values[key] {
        case .object(let o)?: return ModelConfig(path: "\(path): \(key)", values: o)
        case nil, .null?: return nil
        default: throw fail(key, "an object")
        }
    }

    /// The keys of the object.
    public var keys: [String] { values.keys.sorted() }

    /// This config with `other`'s keys replacing or adding to its own (named after both in errors).
    public func overridden(by other: ModelConfig) -> ModelConfig {
        ModelConfig(path: "\(path) with \(other.path)", values: values.merging(other.values) { _, new in new })
    }

    public init(path: String) throws {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WeightError.cannotOpen(file: path, reason: "file not found")
        }
        do {
            self.values = try JSONDecoder().decode([String: JSONValue].self, from: data)
        } catch {
            // Python's json writes non-finite floats as bare -Infinity/NaN (diffusers saves
            // DPMSolverMultistepScheduler's lambda_min_clipped = -inf so), which strict JSON
            // rejects; JSON5 accepts them. Strict first, so that ordinary files stay strict.
            let lenient = JSONDecoder()
            lenient.allowsJSON5 = true
            guard let values = try? lenient.decode([String: JSONValue].self, from: data) else {
                throw ModelError.invalidConfig("\(path): not a JSON object (\(error))")
            }
            self.values = values
        }
    }

    public func has(_ key: String) -> Bool {
        if let v = values[key], case .null = v { return false }
        return values[key] != nil
    }

    /// The raw value of a key, nil when absent or null.
    func value(_ key: String) -> JSONValue? {
        if let v = values[key], case .null = v { return nil }
        return values[key]
    }

    private func fail(_ key: String, _ expected: String) -> ModelError {
        .invalidConfig("\(path): \"\(key)\" must be \(expected)")
    }

    public func int(_ key: String, default d: Int? = nil) throws -> Int {
        switch values[key] {
        case .number(let n)? where n == n.rounded(): return Int(n)
        case nil, .null?: if let d { return d }; throw fail(key, "present (an integer)")
        default: throw fail(key, "an integer")
        }
    }

    public func double(_ key: String, default d: Double? = nil) throws -> Double {
        switch values[key] {
        case .number(let n)?: return n
        case nil, .null?: if let d { return d }; throw fail(key, "present (a number)")
        default: throw fail(key, "a number")
        }
    }

    public func bool(_ key: String, default d: Bool) throws -> Bool {
        switch values[key] {
        case .bool(let b)?: return b
        case nil, .null?: return d
        default: throw fail(key, "true or false")
        }
    }

    public func string(_ key: String, default d: String? = nil) throws -> String {
        switch values[key] {
        case .string(let s)?: return s
        case nil, .null?: if let d { return d }; throw fail(key, "present (a string)")
        default: throw fail(key, "a string")
        }
    }

    public func optionalInt(_ key: String) throws -> Int? {
        has(key) ? try int(key) : nil
    }

    public func ints(_ key: String, default d: [Int]? = nil) throws -> [Int] {
        switch values[key] {
        case .array(let a)?:
            return try a.map { v in
                guard case .number(let n) = v, n == n.rounded() else { throw fail(key, "a list of integers") }
                return Int(n)
            }
        case nil, .null?: if let d { return d }; throw fail(key, "present (a list of integers)")
        default: throw fail(key, "a list of integers")
        }
    }

    /// An integer or a per-block list of integers (diffusers accepts both for head counts).
    public func intOrInts(_ key: String, count: Int, default d: Int) throws -> [Int] {
        switch values[key] {
        case .number?: return [Int](repeating: try int(key), count: count)
        case .array?:
            let list = try ints(key)
            guard list.count == count else { throw fail(key, "an integer or a list of \(count) integers") }
            return list
        case nil, .null?: return [Int](repeating: d, count: count)
        default: throw fail(key, "an integer or a list of integers")
        }
    }

    public func strings(_ key: String, default d: [String]? = nil) throws -> [String] {
        switch values[key] {
        case .array(let a)?:
            return try a.map { v in
                guard case .string(let s) = v else { throw fail(key, "a list of strings") }
                return s
            }
        case nil, .null?: if let d { return d }; throw fail(key, "present (a list of strings)")
        default: throw fail(key, "a list of strings")
        }
    }
}

enum JSONValue: Sendable, Equatable, Decodable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }
}
