import Foundation
import Testing

@testable import VidrdRuntime

/// Tests/Fixtures/clip-tokenizer: a full 49408-token CLIP tokenizer folder plus `cases.json`,
/// `{"cases": [{"text", "ids"}]}` recorded from transformers'
/// `CLIPTokenizer.from_pretrained(dir)(text, padding="max_length", max_length=77, truncation=True)`.
enum CLIPTokenizerFixture {
    static let directory: URL = {
        if let override = ProcessInfo.processInfo.environment["VIDRD_CLIP_TOKENIZER_FIXTURE"] {
            return URL(fileURLWithPath: override, isDirectory: true)
        }
        // Resolve symlinks so that a copy of this file linked from elsewhere still finds the fixtures.
        return URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/clip-tokenizer", isDirectory: true)
            .standardizedFileURL
    }()

    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        var text: String
        var ids: [Int32]
        var testDescription: String { String(reflecting: text) }
    }

    struct File: Decodable { var cases: [Case] }

    static let cases: [Case] = {
        let url = directory.appendingPathComponent("cases.json")
        guard let data = try? Data(contentsOf: url),
              let file = try? JSONDecoder().decode(File.self, from: data) else { return [] }
        return file.cases
    }()

    static let tokenizer: Result<CLIPTokenizer, any Error> = Result { try CLIPTokenizer(directory: directory) }

    /// A scratch folder holding copies of (some of) the fixture files.
    static func scratchCopy(_ files: [String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("clip-tokenizer-test-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for name in files {
            try FileManager.default.copyItem(
                at: directory.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        return dir
    }
}

@Suite struct CLIPTokenizerTests {
    @Test func fixtureCasesArePresent() {
        #expect(CLIPTokenizerFixture.cases.count >= 50, "no cases.json under \(CLIPTokenizerFixture.directory.path)")
    }

    @Test(arguments: CLIPTokenizerFixture.cases)
    func matchesTransformers(_ testCase: CLIPTokenizerFixture.Case) throws {
        let tokenizer = try CLIPTokenizerFixture.tokenizer.get()
        #expect(tokenizer.encode(testCase.text) == testCase.ids)
    }

    @Test func tokenizeIsEncodeWithoutPadding() throws {
        let tokenizer = try CLIPTokenizerFixture.tokenizer.get()
        #expect(tokenizer.bosTokenID == 49406 && tokenizer.eosTokenID == 49407 && tokenizer.padTokenID == 49407)
        #expect(tokenizer.tokenize("") == [49406, 49407])
        for testCase in CLIPTokenizerFixture.cases {
            let ids = tokenizer.tokenize(testCase.text)
            #expect(ids.count <= 77 && ids.first == 49406 && ids.last == 49407)
            #expect(Array(testCase.ids.prefix(ids.count)) == ids)
            #expect(testCase.ids.dropFirst(ids.count).allSatisfy { $0 == tokenizer.padTokenID })
        }
    }

    @Test func shorterMaxLengthTruncatesAndPads() throws {
        var tokenizer = try CLIPTokenizerFixture.tokenizer.get()
        tokenizer.maxLength = 5
        let long = tokenizer.tokenize("a photo of a cat riding a horse")
        #expect(long == [49406, 320, 1125, 539, 49407])
        #expect(tokenizer.encode("a") == [49406, 320, 49407, 49407, 49407])
    }

    /// SD 2.x / SDXL `tokenizer_2` style: pad token "!", which transformers 5.x registers as a special
    /// added token, so a "!" in the text becomes id 0 instead of "!</w>" (256). Ids recorded from transformers 5.24.
    @Test func exclamationPadTokenConfig() throws {
        let dir = try CLIPTokenizerFixture.scratchCopy(["vocab.json", "merges.txt"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let flags = #""lstrip": false, "normalized": true, "rstrip": false, "single_word": false"#
        let config = """
            {"bos_token": {"__type": "AddedToken", "content": "<|startoftext|>", \(flags)},
             "eos_token": {"__type": "AddedToken", "content": "<|endoftext|>", \(flags)},
             "model_max_length": 77, "pad_token": "!", "tokenizer_class": "CLIPTokenizer",
             "unk_token": {"__type": "AddedToken", "content": "<|endoftext|>", \(flags)}}
            """
        let map = """
            {"bos_token": {"content": "<|startoftext|>", \(flags)}, "eos_token": {"content": "<|endoftext|>", \(flags)},
             "pad_token": "!", "unk_token": {"content": "<|endoftext|>", \(flags)}}
            """
        try config.write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        try map.write(to: dir.appendingPathComponent("special_tokens_map.json"), atomically: true, encoding: .utf8)
        let tokenizer = try CLIPTokenizer(directory: dir)
        #expect(tokenizer.padTokenID == 0)
        func padded(_ ids: [Int32]) -> [Int32] { ids + Array(repeating: 0, count: 77 - ids.count) }
        #expect(tokenizer.encode("Hello!") == padded([49406, 3306, 0, 49407]))
        #expect(tokenizer.encode("wow!!! ok") == padded([49406, 2781, 0, 0, 0, 2481, 49407]))
        #expect(tokenizer.encode("x!y") == padded([49406, 343, 0, 344, 49407]))
        // Normalized special tokens also match upper-case spellings.
        #expect(tokenizer.encode("A <|ENDOFTEXT|> b <|STARTOFTEXT|>") == padded([49406, 320, 49407, 321, 49406, 49407]))
    }

    @Test func missingFolder() {
        let url = URL(fileURLWithPath: "/nonexistent/clip-tokenizer-\(UUID().uuidString)")
        #expect(throws: CLIPTokenizerError.directoryNotFound(path: url.path)) {
            try CLIPTokenizer(directory: url)
        }
    }

    @Test func missingVocab() throws {
        let dir = try CLIPTokenizerFixture.scratchCopy(["merges.txt"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = #expect(throws: CLIPTokenizerError.self) { try CLIPTokenizer(directory: dir) }
        guard case .missingFile(let path) = error else {
            Issue.record("unexpected \(String(describing: error))")
            return
        }
        #expect(path.hasSuffix("vocab.json"))
        #expect(error!.description.contains("vocab.json"))
    }

    @Test func corruptVocab() throws {
        let dir = try CLIPTokenizerFixture.scratchCopy(["merges.txt", "tokenizer_config.json"])
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("{\"a\": 1, \"b\": ".utf8).write(to: dir.appendingPathComponent("vocab.json"))
        let error = #expect(throws: CLIPTokenizerError.self) { try CLIPTokenizer(directory: dir) }
        guard case .malformedJSON(let path, _) = error else {
            Issue.record("unexpected \(String(describing: error))")
            return
        }
        #expect(path.hasSuffix("vocab.json"))

        try Data("[\"a\", \"b\"]".utf8).write(to: dir.appendingPathComponent("vocab.json"))
        #expect(throws: CLIPTokenizerError.self) { try CLIPTokenizer(directory: dir) }
        try Data("{\"a\": \"zero\"}".utf8).write(to: dir.appendingPathComponent("vocab.json"))
        let typeError = #expect(throws: CLIPTokenizerError.self) { try CLIPTokenizer(directory: dir) }
        #expect(typeError?.description.contains("vocab.json") == true)
        #expect(typeError?.description.contains("\"a\"") == true)
    }

    @Test func mergeOutsideVocab() throws {
        let dir = try CLIPTokenizerFixture.scratchCopy(["vocab.json", "tokenizer_config.json"])
        defer { try? FileManager.default.removeItem(at: dir) }
        try "#version: 0.2\ni n\nzz\u{1F600} q\n".write(
            to: dir.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        #expect(throws: CLIPTokenizerError.mergeTokenNotInVocabulary(
            path: dir.appendingPathComponent("merges.txt").path, line: 3, token: "zz\u{1F600}")) {
            try CLIPTokenizer(directory: dir)
        }
        try "#version: 0.2\ni n\n\nt h\n".write(
            to: dir.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        #expect(throws: CLIPTokenizerError.malformedMerge(
            path: dir.appendingPathComponent("merges.txt").path, line: 3, text: "")) {
            try CLIPTokenizer(directory: dir)
        }
    }

    @Test func missingSpecialToken() throws {
        let dir = try CLIPTokenizerFixture.scratchCopy(["merges.txt", "special_tokens_map.json"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let vocabData = try Data(contentsOf: CLIPTokenizerFixture.directory.appendingPathComponent("vocab.json"))
        var vocab = try JSONDecoder().decode([String: Int].self, from: vocabData)
        vocab["<|startoftext|>"] = nil
        try JSONEncoder().encode(vocab).write(to: dir.appendingPathComponent("vocab.json"))
        let error = #expect(throws: CLIPTokenizerError.self) { try CLIPTokenizer(directory: dir) }
        guard case .missingSpecialToken(let path, let role, let token) = error else {
            Issue.record("unexpected \(String(describing: error))")
            return
        }
        #expect(path.hasSuffix("special_tokens_map.json"))
        #expect(role == "bos_token" && token == "<|startoftext|>")
    }

    @Test func concurrentUse() async throws {
        let tokenizer = try CLIPTokenizerFixture.tokenizer.get()
        let cases = CLIPTokenizerFixture.cases
        let mismatches = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask { cases.filter { tokenizer.encode($0.text) != $0.ids }.count }
            }
            return await group.reduce(0, +)
        }
        #expect(mismatches == 0)
    }
}

/// transformers 5 saves tokenizers as `tokenizer.json` only (no vocab.json / merges.txt).
@Suite struct TokenizerJSONTests {
    @Test func tokenizerJSONFolderMatchesTransformers() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizer-json")
        let tokenizer = try CLIPTokenizer(directory: dir)
        let data = try Data(contentsOf: dir.appendingPathComponent("cases.json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cases = try #require(root["cases"] as? [[String: Any]])
        #expect(cases.count >= 40)
        for c in cases {
            let text = try #require(c["text"] as? String)
            let ids = try #require(c["ids"] as? [Int]).map { Int32($0) }
            #expect(tokenizer.encode(text) == ids, "\(String(reflecting: text))")
        }
    }
}
