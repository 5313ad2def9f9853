import Foundation

/// Errors raised while loading a CLIP tokenizer folder. Every message names the file and what is wrong with it.
public enum CLIPTokenizerError: Error, CustomStringConvertible, Equatable {
    /// The tokenizer folder itself does not exist (or is not a folder).
    case directoryNotFound(path: String)
    /// A required file (vocab.json, merges.txt) is absent.
    case missingFile(path: String)
    /// The file exists but could not be read or is not valid UTF-8.
    case unreadableFile(path: String, reason: String)
    /// The file is not the JSON this tokenizer expects.
    case malformedJSON(path: String, reason: String)
    /// A merges.txt line that is not exactly two space-separated parts.
    case malformedMerge(path: String, line: Int, text: String)
    /// A merges.txt line whose parts, or whose merged result, are not in vocab.json.
    case mergeTokenNotInVocabulary(path: String, line: Int, token: String)
    /// A special token (bos/eos/pad/unk/...) named by the config whose text is not in vocab.json.
    case missingSpecialToken(path: String, role: String, token: String)

    public var description: String {
        switch self {
        case .directoryNotFound(let path):
            return "CLIP tokenizer folder not found: \(path)"
        case .missingFile(let path):
            return "CLIP tokenizer file missing: \(path)"
        case .unreadableFile(let path, let reason):
            return "CLIP tokenizer file unreadable: \(path): \(reason)"
        case .malformedJSON(let path, let reason):
            return "CLIP tokenizer file malformed: \(path): \(reason)"
        case .malformedMerge(let path, let line, let text):
            return "CLIP tokenizer merges malformed: \(path) line \(line): expected two space-separated tokens, got \(String(reflecting: text))"
        case .mergeTokenNotInVocabulary(let path, let line, let token):
            return "CLIP tokenizer merges invalid: \(path) line \(line): token \(String(reflecting: token)) is not in vocab.json"
        case .missingSpecialToken(let path, let role, let token):
            return "CLIP tokenizer special token missing: \(role) \(String(reflecting: token)) (from \(path)) is not in vocab.json"
        }
    }
}

/// CLIP byte-level BPE tokenizer reproducing, id for id, transformers 5.x
/// `CLIPTokenizer.from_pretrained(dir)(text, padding="max_length", max_length=77, truncation=True)`
/// (the `tokenizers`-backed class): added/special tokens split out first, then
/// NFC + `\s+`→" " + per-character lowercase, CLIP split regex (plus the ByteLevel GPT-2 sub-split),
/// byte→unicode mapping, BPE with a `</w>` end-of-word suffix, BOS … EOS, truncation, right padding.
public struct CLIPTokenizer: Sendable {
    /// Length of `encode`'s output, and the cap (BOS + content + EOS) of `tokenize`'s.
    public var maxLength: Int = 77

    public let bosTokenID: Int32
    public let eosTokenID: Int32
    public let padTokenID: Int32
    public let unkTokenID: Int32?
    public let vocabularySize: Int

    /// Vocabulary id of each byte's unicode stand-in, without (`byteIDs`) and with (`byteEndIDs`) "</w>"; -1 if absent.
    private let byteIDs: [Int32]
    private let byteEndIDs: [Int32]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    private let merges: [UInt64: UInt64]
    /// Added tokens matched on the raw text (normalized == false) and on the normalized text (normalized == true).
    private let rawAddedTokens: [AddedToken]
    private let normalizedAddedTokens: [AddedToken]

    struct AddedToken: Sendable {
        var scalars: [Unicode.Scalar]
        var id: Int32
        var singleWord: Bool
    }

    // MARK: Loading

    public init(directory: URL) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw CLIPTokenizerError.directoryNotFound(path: directory.path)
        }
        let vocabURL = directory.appendingPathComponent("vocab.json")
        let mergesURL = directory.appendingPathComponent("merges.txt")
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        let specialURL = directory.appendingPathComponent("special_tokens_map.json")

        // vocab.json + merges.txt, or (as transformers 5 saves tokenizers) tokenizer.json's BPE model.
        let jsonURL = directory.appendingPathComponent("tokenizer.json")
        let vocabDict: [String: Any]
        let mergeLines: [Substring]
        let mergesSource: URL
        let vocabSource: URL
        if !fm.fileExists(atPath: vocabURL.path), fm.fileExists(atPath: jsonURL.path) {
            (vocabDict, mergeLines) = try Self.readTokenizerJSON(jsonURL)
            vocabSource = jsonURL
            mergesSource = jsonURL
        } else {
            let vocabData = try Self.read(vocabURL, required: true)!
            let vocabObject: Any
            do {
                vocabObject = try JSONSerialization.jsonObject(with: vocabData)
            } catch {
                throw CLIPTokenizerError.malformedJSON(path: vocabURL.path, reason: "not valid JSON (\(error.localizedDescription))")
            }
            guard let dict = vocabObject as? [String: Any] else {
                throw CLIPTokenizerError.malformedJSON(path: vocabURL.path, reason: "expected an object mapping token strings to ids")
            }
            vocabDict = dict
            let mergesData = try Self.read(mergesURL, required: true)!
            guard let mergesText = String(data: mergesData, encoding: .utf8) else {
                throw CLIPTokenizerError.unreadableFile(path: mergesURL.path, reason: "not valid UTF-8")
            }
            var lines = mergesText.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.last == "" { lines.removeLast() }  // final newline
            mergeLines = lines
            vocabSource = vocabURL
            mergesSource = mergesURL
        }
        var vocab: [String: Int32] = [:]
        vocab.reserveCapacity(vocabDict.count)
        for (token, value) in vocabDict {
            guard let integer = value as? Int, let id = Int32(exactly: integer), id >= 0 else {
                throw CLIPTokenizerError.malformedJSON(
                    path: vocabSource.path, reason: "token \(String(reflecting: token)) has id \(value), expected a non-negative integer")
            }
            vocab[token] = id
        }
        guard !vocab.isEmpty else {
            throw CLIPTokenizerError.malformedJSON(path: vocabSource.path, reason: "the vocabulary is empty")
        }
        vocabularySize = vocab.count

        // Byte-level alphabet.
        let byteChars = Self.bytesToUnicode()
        var ids = [Int32](repeating: -1, count: 256)
        var endIDs = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            let ch = String(Character(byteChars[b]))
            ids[b] = vocab[ch] ?? -1
            endIDs[b] = vocab[ch + "</w>"] ?? -1
        }
        byteIDs = ids
        byteEndIDs = endIDs

        // Merges (same rules as tokenizers' BPE::read_file: "#version" lines skipped, every other line is "a b").
        let lines = mergeLines
        var mergeMap: [UInt64: UInt64] = [:]
        mergeMap.reserveCapacity(lines.count)
        var rank: UInt64 = 0
        for (index, rawLine) in lines.enumerated() {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.hasPrefix("#version") { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw CLIPTokenizerError.malformedMerge(path: mergesSource.path, line: index + 1, text: String(line))
            }
            let a = String(parts[0]), b = String(parts[1])
            guard let ia = vocab[a] else {
                throw CLIPTokenizerError.mergeTokenNotInVocabulary(path: mergesSource.path, line: index + 1, token: a)
            }
            guard let ib = vocab[b] else {
                throw CLIPTokenizerError.mergeTokenNotInVocabulary(path: mergesSource.path, line: index + 1, token: b)
            }
            guard let iab = vocab[a + b] else {
                throw CLIPTokenizerError.mergeTokenNotInVocabulary(path: mergesSource.path, line: index + 1, token: a + b)
            }
            let key = UInt64(UInt32(ia)) << 32 | UInt64(UInt32(ib))
            // Like tokenizers (a HashMap insert), a repeated pair keeps its last rank.
            mergeMap[key] = rank << 32 | UInt64(UInt32(iab))
            rank += 1
        }
        merges = mergeMap

        // Special and added tokens, resolved as transformers 5.x does.
        let config = try Self.readJSONObject(configURL)
        let specialMap = try Self.readJSONObject(specialURL)
        let resolved = try Self.resolveSpecialTokens(
            config: config ?? [:], configPath: configURL.path,
            specialMap: specialMap, specialMapPath: specialURL.path)

        func requireID(_ role: String) throws -> Int32? {
            guard let spec = resolved.named[role] else { return nil }
            guard let id = vocab[spec.content] else {
                throw CLIPTokenizerError.missingSpecialToken(path: spec.source, role: role, token: spec.content)
            }
            return id
        }
        let defaultSource = "\(configURL.path) (transformers default)"
        func withDefault(_ role: String, _ content: String) -> TokenSpec {
            resolved.named[role] ?? TokenSpec(content: content, isString: true, source: defaultSource)
        }
        let bosSpec = withDefault("bos_token", "<|startoftext|>")
        let eosSpec = withDefault("eos_token", "<|endoftext|>")
        let padSpec = withDefault("pad_token", "<|endoftext|>")
        guard let bos = vocab[bosSpec.content] else {
            throw CLIPTokenizerError.missingSpecialToken(path: bosSpec.source, role: "bos_token", token: bosSpec.content)
        }
        guard let eos = vocab[eosSpec.content] else {
            throw CLIPTokenizerError.missingSpecialToken(path: eosSpec.source, role: "eos_token", token: eosSpec.content)
        }
        guard let pad = vocab[padSpec.content] else {
            throw CLIPTokenizerError.missingSpecialToken(path: padSpec.source, role: "pad_token", token: padSpec.content)
        }
        bosTokenID = bos
        eosTokenID = eos
        padTokenID = pad
        unkTokenID = try requireID("unk_token") ?? vocab["<|endoftext|>"]
        for role in ["sep_token", "cls_token", "mask_token"] { _ = try requireID(role) }

        // Added tokens: later declarations of the same text replace earlier ones (one tokenizers add call).
        var order: [String] = []
        var final: [String: TokenSpec] = [:]
        for spec in resolved.added where !spec.content.isEmpty {
            if final[spec.content] == nil { order.append(spec.content) }
            final[spec.content] = spec
        }
        var raw: [AddedToken] = []
        var normalized: [AddedToken] = []
        for content in order {
            let spec = final[content]!
            guard let id = vocab[content] ?? spec.declaredID else {
                throw CLIPTokenizerError.missingSpecialToken(path: spec.source, role: "added token", token: content)
            }
            let token = AddedToken(scalars: Array(content.unicodeScalars), id: id, singleWord: spec.singleWord)
            if spec.normalized { normalized.append(token) } else { raw.append(token) }
        }
        rawAddedTokens = raw
        normalizedAddedTokens = normalized
    }

    // MARK: Encoding

    /// BOS, the text's tokens (at most `maxLength - 2` of them), EOS. Not padded.
    public func tokenize(_ text: String) -> [Int32] {
        let budget = Swift.max(0, maxLength - 2)
        var out: [Int32] = [bosTokenID]
        out.reserveCapacity(Swift.min(budget, 128) + 2)
        var content = ContentSink(budget: budget)
        encodeContent(text, into: &content)
        out.append(contentsOf: content.ids)
        out.append(eosTokenID)
        return out
    }

    /// `tokenize` padded with the pad token to `maxLength`.
    public func encode(_ text: String) -> [Int32] {
        var ids = tokenize(text)
        if ids.count < maxLength {
            ids.append(contentsOf: repeatElement(padTokenID, count: maxLength - ids.count))
        }
        return ids
    }

    struct ContentSink {
        var ids: [Int32] = []
        let budget: Int
        init(budget: Int) { self.budget = budget }
        var full: Bool { ids.count >= budget }
        mutating func append(_ id: Int32) { if ids.count < budget { ids.append(id) } }
    }

    private func encodeContent(_ text: String, into sink: inout ContentSink) {
        let scalars = Array(text.unicodeScalars)
        // 1. Added tokens that match the raw text.
        forEachSplit(scalars, tokens: rawAddedTokens) { piece in
            if sink.full { return }
            switch piece {
            case .token(let id):
                sink.append(id)
            case .text(let range):
                // 2. Normalize each remaining piece, then split out added tokens matching the normalized text.
                let normalized = Self.normalize(scalars[range])
                forEachSplit(normalized, tokens: normalizedAddedTokens) { inner in
                    if sink.full { return }
                    switch inner {
                    case .token(let id): sink.append(id)
                    case .text(let r): encodeNormalized(normalized[r], into: &sink)
                    }
                }
            }
        }
    }

    enum Piece {
        case token(Int32)
        case text(Range<Int>)
    }

    /// Leftmost-longest, non-overlapping matching of added tokens (tokenizers' aho-corasick split).
    private func forEachSplit(_ s: [Unicode.Scalar], tokens: [AddedToken], _ body: (Piece) -> Void) {
        if tokens.isEmpty {
            if !s.isEmpty { body(.text(0..<s.count)) }
            return
        }
        var start = 0  // start of the pending text
        var i = 0
        let n = s.count
        while i < n {
            var best: AddedToken? = nil
            var bestLength = 0
            for token in tokens where token.scalars.count > bestLength && token.scalars.count <= n - i {
                var matched = true
                for k in 0..<token.scalars.count where s[i + k] != token.scalars[k] {
                    matched = false
                    break
                }
                if matched {
                    best = token
                    bestLength = token.scalars.count
                }
            }
            guard let token = best else {
                i += 1
                continue
            }
            let end = i + bestLength
            if token.singleWord {
                let startsOK = i == 0 || !Self.isWordCharacter(s[i - 1])
                let endsOK = end == n || !Self.isWordCharacter(s[end])
                if !(startsOK && endsOK) {
                    i = end
                    continue
                }
            }
            if i > start { body(.text(start..<i)) }
            body(.token(token.id))
            start = end
            i = end
        }
        if start < n { body(.text(start..<n)) }
    }

    /// The CLIP pre-tokenizer on normalized text, then BPE on every word.
    /// Split regex (matches kept, the rest — whitespace — dropped):
    /// `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`.
    /// The following ByteLevel pre-tokenizer's GPT-2 regex only changes the two literal special-token
    /// matches, which it cuts into "<|", the letters, and "|>".
    private func encodeNormalized(_ s: ArraySlice<Unicode.Scalar>, into sink: inout ContentSink) {
        var i = s.startIndex
        let end = s.endIndex
        while i < end {
            if sink.full { return }
            let c = s[i]
            let cls = Self.classify(c)
            if cls == .space {
                i += 1
                continue
            }
            if c == "<" {
                var literalLength = 0
                if Self.hasPrefix(s, at: i, Self.startOfText) {
                    literalLength = Self.startOfText.count
                } else if Self.hasPrefix(s, at: i, Self.endOfText) {
                    literalLength = Self.endOfText.count
                }
                if literalLength > 0 {
                    bpe(s[i..<(i + 2)], into: &sink)
                    bpe(s[(i + 2)..<(i + literalLength - 2)], into: &sink)
                    bpe(s[(i + literalLength - 2)..<(i + literalLength)], into: &sink)
                    i += literalLength
                    continue
                }
            }
            if c == "'" && i + 1 < end {
                let next = s[i + 1]
                var length = 0
                switch next {
                case "s", "t", "m", "d": length = 2
                case "r", "v": if i + 2 < end && s[i + 2] == "e" { length = 3 }
                case "l": if i + 2 < end && s[i + 2] == "l" { length = 3 }
                default: break
                }
                if length > 0 {
                    bpe(s[i..<(i + length)], into: &sink)
                    i += length
                    continue
                }
            }
            var j = i + 1
            switch cls {
            case .letter:
                while j < end && Self.classify(s[j]) == .letter { j += 1 }
            case .number:
                break
            case .other:
                while j < end && Self.classify(s[j]) == .other { j += 1 }
            case .space:
                break
            }
            bpe(s[i..<j], into: &sink)
            i = j
        }
    }

    /// Byte-level BPE of one pre-tokenized word, "</w>" on its last symbol.
    private func bpe(_ word: ArraySlice<Unicode.Scalar>, into sink: inout ContentSink) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(word.count * 2)
        for scalar in word { bytes.append(contentsOf: UTF8.encode(scalar)!) }
        if bytes.isEmpty { return }
        var symbols: [Int32] = []
        symbols.reserveCapacity(bytes.count)
        for (k, b) in bytes.enumerated() {
            let id = k == bytes.count - 1 ? byteEndIDs[Int(b)] : byteIDs[Int(b)]
            if id >= 0 {
                symbols.append(id)
            } else if let unk = unkTokenID {
                symbols.append(unk)  // fuse_unk is false: one unk per missing symbol
            }
        }
        if symbols.count > 1 {
            // ranks[k]: rank << 32 | merged id of (symbols[k], symbols[k+1]), or .max.
            var ranks = [UInt64](repeating: .max, count: symbols.count - 1)
            for k in 0..<(symbols.count - 1) { ranks[k] = pairRank(symbols[k], symbols[k + 1]) }
            while !ranks.isEmpty {
                var bestIndex = -1
                var bestValue = UInt64.max
                for k in 0..<ranks.count where ranks[k] >> 32 < bestValue >> 32 {
                    bestValue = ranks[k]
                    bestIndex = k
                }
                if bestIndex < 0 { break }
                symbols[bestIndex] = Int32(truncatingIfNeeded: bestValue & 0xFFFF_FFFF)
                symbols.remove(at: bestIndex + 1)
                ranks.remove(at: bestIndex)
                if bestIndex > 0 {
                    ranks[bestIndex - 1] = pairRank(symbols[bestIndex - 1], symbols[bestIndex])
                }
                if bestIndex < ranks.count {
                    ranks[bestIndex] = pairRank(symbols[bestIndex], symbols[bestIndex + 1])
                }
            }
        }
        for id in symbols { sink.append(id) }
    }

    @inline(__always)
    private func pairRank(_ a: Int32, _ b: Int32) -> UInt64 {
        merges[UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))] ?? .max
    }

    // MARK: Normalization (NFC, `\s+` → " ", lowercase)

    static func normalize(_ piece: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        var source: [Unicode.Scalar]
        // Below U+0300 there are no combining marks, so NFC changes nothing.
        if piece.contains(where: { $0.value >= 0x300 }) {
            var string = String()
            string.unicodeScalars.append(contentsOf: piece)
            source = Array(string.precomposedStringWithCanonicalMapping.unicodeScalars)
        } else {
            source = Array(piece)
        }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(source.count)
        var inSpace = false
        for c in source {
            if c.properties.isWhitespace {
                if !inSpace { out.append(" ") }
                inSpace = true
                continue
            }
            inSpace = false
            if c.isASCII {
                let v = c.value
                out.append(v >= 65 && v <= 90 ? Unicode.Scalar(v + 32)! : c)
            } else {
                // Per-character full lowercase mapping (Rust's char::to_lowercase): no final-sigma context.
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    // MARK: Character classes

    enum CharClass { case space, letter, number, other }

    @inline(__always)
    static func classify(_ c: Unicode.Scalar) -> CharClass {
        let v = c.value
        if v < 0x80 {
            if (v >= 0x61 && v <= 0x7A) || (v >= 0x41 && v <= 0x5A) { return .letter }
            if v >= 0x30 && v <= 0x39 { return .number }
            if v == 0x20 || (v >= 0x09 && v <= 0x0D) { return .space }
            return .other
        }
        let p = c.properties
        if p.isWhitespace { return .space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    /// Rust regex `\w` (used by tokenizers for single_word added tokens).
    static func isWordCharacter(_ c: Unicode.Scalar) -> Bool {
        let p = c.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    static let startOfText = Array("<|startoftext|>".unicodeScalars)
    static let endOfText = Array("<|endoftext|>".unicodeScalars)

    @inline(__always)
    static func hasPrefix(_ s: ArraySlice<Unicode.Scalar>, at i: Int, _ p: [Unicode.Scalar]) -> Bool {
        guard s.endIndex - i >= p.count else { return false }
        for k in 0..<p.count where s[i + k] != p[k] { return false }
        return true
    }

    /// GPT-2's reversible byte → printable unicode mapping.
    static func bytesToUnicode() -> [Unicode.Scalar] {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(256 + n)!
                n += 1
            }
        }
        return table
    }

    // MARK: Config files

    struct TokenSpec: Equatable {
        var content: String
        /// A bare string in the config (becomes a special, non-normalized AddedToken).
        var isString: Bool
        var singleWord = false
        var lstrip = false
        var rstrip = false
        var normalized = false
        var special = true
        var declaredID: Int32? = nil
        var source: String

        static func == (a: TokenSpec, b: TokenSpec) -> Bool {
            a.content == b.content && a.isString == b.isString && a.singleWord == b.singleWord
                && a.lstrip == b.lstrip && a.rstrip == b.rstrip && a.normalized == b.normalized
                && a.special == b.special
        }
    }

    struct ResolvedTokens {
        var named: [String: TokenSpec]
        /// In the order transformers adds them to the backend.
        var added: [TokenSpec]
    }

    static let namedRoles = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]

    /// Mirrors transformers 5.x `_from_pretrained` + `TokenizersBackend.__init__`: with an `added_tokens_decoder`
    /// in tokenizer_config.json those tokens come first and special_tokens_map.json is ignored; otherwise
    /// special_tokens_map.json overrides the config's named tokens. Bare strings become special, non-normalized
    /// tokens; dicts keep their flags.
    static func resolveSpecialTokens(
        config: [String: Any], configPath: String, specialMap: [String: Any]?, specialMapPath: String
    ) throws -> ResolvedTokens {
        var named: [String: TokenSpec] = [:]
        var extras: [TokenSpec] = []
        var decoderTokens: [TokenSpec] = []

        func parse(_ value: Any, path: String, key: String, forceSpecial: Bool) throws -> TokenSpec? {
            if value is NSNull { return nil }
            if let s = value as? String { return TokenSpec(content: s, isString: true, source: path) }
            if let d = value as? [String: Any] {
                guard let content = d["content"] as? String else {
                    throw CLIPTokenizerError.malformedJSON(path: path, reason: "\(key) has no string \"content\"")
                }
                func flag(_ name: String, _ def: Bool) -> Bool { (d[name] as? Bool) ?? def }
                let special = forceSpecial ? true : flag("special", false)
                var spec = TokenSpec(content: content, isString: false, source: path)
                spec.special = special
                spec.singleWord = flag("single_word", false)
                spec.lstrip = flag("lstrip", false)
                spec.rstrip = flag("rstrip", false)
                spec.normalized = flag("normalized", !special)
                return spec
            }
            throw CLIPTokenizerError.malformedJSON(path: path, reason: "\(key) must be a string or an object with \"content\"")
        }

        for role in namedRoles {
            if let v = config[role], let spec = try parse(v, path: configPath, key: role, forceSpecial: false) {
                named[role] = spec
            }
        }
        for key in ["additional_special_tokens", "extra_special_tokens"] {
            if let list = config[key] as? [Any] {
                for v in list { if let spec = try parse(v, path: configPath, key: key, forceSpecial: false) { extras.append(spec) } }
            }
        }

        if let decoder = config["added_tokens_decoder"] {
            guard let dict = decoder as? [String: Any] else {
                throw CLIPTokenizerError.malformedJSON(path: configPath, reason: "added_tokens_decoder must be an object")
            }
            var entries: [(Int, TokenSpec)] = []
            for (key, value) in dict {
                guard let id = Int(key), let id32 = Int32(exactly: id) else {
                    throw CLIPTokenizerError.malformedJSON(path: configPath, reason: "added_tokens_decoder key \(String(reflecting: key)) is not an id")
                }
                guard value is [String: Any], var spec = try parse(value, path: configPath, key: "added_tokens_decoder[\(key)]", forceSpecial: false) else {
                    throw CLIPTokenizerError.malformedJSON(path: configPath, reason: "added_tokens_decoder[\(key)] must be an object")
                }
                spec.declaredID = id32
                entries.append((id, spec))
            }
            decoderTokens = entries.sorted { $0.0 < $1.0 }.map(\.1)
            // Named tokens given as strings resolve to the decoder's token of the same text.
            for (role, spec) in named {
                if let match = decoderTokens.last(where: { $0.content == spec.content }) { named[role] = match }
            }
        } else if let map = specialMap {
            for (key, value) in map {
                if key == "additional_special_tokens" || key == "extra_special_tokens" {
                    if let list = value as? [Any] {
                        for v in list {
                            if let spec = try parse(v, path: specialMapPath, key: key, forceSpecial: true), !extras.contains(spec) {
                                extras.append(spec)
                            }
                        }
                    }
                    continue
                }
                guard namedRoles.contains(key) else { continue }
                if let spec = try parse(value, path: specialMapPath, key: key, forceSpecial: true) {
                    named[key] = spec
                } else {
                    named[key] = nil
                }
            }
        }

        var added = decoderTokens
        let decoderContents = Set(decoderTokens.map(\.content))
        for spec in namedRoles.compactMap({ named[$0] }) + extras {
            if decoderContents.contains(spec.content) || added.contains(spec) { continue }
            added.append(spec)
        }
        // Bare strings are added as AddedToken(content, special=True): not normalized.
        added = added.map { spec in
            guard spec.isString else { return spec }
            var s = spec
            s.special = true
            s.normalized = false
            return s
        }
        return ResolvedTokens(named: named, added: added)
    }

    /// The BPE vocabulary and merges of a `tokenizers` `tokenizer.json` (merges either as "a b"
    /// strings or as [a, b] pairs, depending on the library version that wrote it).
    private static func readTokenizerJSON(_ url: URL) throws -> ([String: Any], [Substring]) {
        guard let root = try readJSONObject(url) else { throw CLIPTokenizerError.missingFile(path: url.path) }
        guard let model = root["model"] as? [String: Any], (model["type"] as? String) == "BPE" else {
            throw CLIPTokenizerError.malformedJSON(path: url.path, reason: "expected a BPE \"model\" object")
        }
        guard let vocab = model["vocab"] as? [String: Any] else {
            throw CLIPTokenizerError.malformedJSON(path: url.path, reason: "model.vocab must be an object mapping token strings to ids")
        }
        guard let merges = model["merges"] as? [Any] else {
            throw CLIPTokenizerError.malformedJSON(path: url.path, reason: "model.merges must be a list")
        }
        var lines: [Substring] = []
        lines.reserveCapacity(merges.count)
        for (i, m) in merges.enumerated() {
            if let line = m as? String {
                lines.append(Substring(line))
            } else if let pair = m as? [String], pair.count == 2 {
                lines.append(Substring(pair[0] + " " + pair[1]))
            } else {
                throw CLIPTokenizerError.malformedMerge(path: url.path, line: i + 1, text: "\(m)")
            }
        }
        return (vocab, lines)
    }

    private static func read(_ url: URL, required: Bool) throws -> Data? {
        guard FileManager.default.fileExists(atPath: url.path) else {
            if required { throw CLIPTokenizerError.missingFile(path: url.path) }
            return nil
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw CLIPTokenizerError.unreadableFile(path: url.path, reason: error.localizedDescription)
        }
    }

    private static func readJSONObject(_ url: URL) throws -> [String: Any]? {
        guard let data = try read(url, required: false) else { return nil }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw CLIPTokenizerError.malformedJSON(path: url.path, reason: "not valid JSON (\(error.localizedDescription))")
        }
        guard let dict = object as? [String: Any] else {
            throw CLIPTokenizerError.malformedJSON(path: url.path, reason: "expected a JSON object at the top level")
        }
        return dict
    }
}
