import Foundation
import VidrdProtocol

/// What the page asks for (the JSON of `POST /api/validate` and of a WebSocket `start`); every
/// field but the prompt is optional and falls back to the daemon's default.
public struct ViewerRequest: Codable, Sendable, Equatable {
    public var prompt: String
    /// Chain text as `vidrd-client --strategy` takes it (`fnr,pns:alpha=2`); "" means no
    /// strategies; nil means the daemon's default chain.
    public var chain: String?
    public var seed: UInt64?
    public var width: UInt32?
    public var height: UInt32?
    public var steps: UInt32?
    public var frames: UInt32?
    public var fps: Double?

    public init(prompt: String, chain: String? = nil, seed: UInt64? = nil, width: UInt32? = nil, height: UInt32? = nil,
                steps: UInt32? = nil, frames: UInt32? = nil, fps: Double? = nil) {
        self.prompt = prompt
        self.chain = chain
        self.seed = seed
        self.width = width
        self.height = height
        self.steps = steps
        self.frames = frames
        self.fps = fps
    }
}

/// A request the gateway refuses before the daemon sees it; `message` names the field.
public struct ViewerRequestError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension ViewerRequest {
    /// Parses the page's JSON; a wrong type or a missing prompt is named rather than reported
    /// as a generic decoding failure.
    public static func decode(_ bytes: some Collection<UInt8>, maxBytes: Int) throws(ViewerRequestError) -> ViewerRequest {
        guard bytes.count <= maxBytes else { throw ViewerRequestError("request is \(bytes.count) bytes, more than \(maxBytes)") }
        do {
            return try JSONDecoder().decode(ViewerRequest.self, from: Data(bytes))
        } catch let DecodingError.keyNotFound(key, _) {
            throw ViewerRequestError("\(key.stringValue) is missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ViewerRequestError("\(field.isEmpty ? "request" : field) has the wrong type (\(context.debugDescription))")
        } catch let DecodingError.dataCorrupted(context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ViewerRequestError("\(field.isEmpty ? "request is not valid JSON" : "\(field) is not valid"): \(context.debugDescription)")
        } catch {
            throw ViewerRequestError("request is not valid JSON: \(error)")
        }
    }

    /// The OPEN_SESSION to send, checked against the daemon's limits from its HELLO_ACK so the
    /// page hears what is wrong in its own terms (`width 70 is not a multiple of 8`), and the
    /// daemon's own checks stay the last word. Every frame is emitted, so the viewer sees the
    /// seams the strategies produce.
    public func openSession(limits: ServerLimits) throws(ViewerRequestError) -> OpenSession {
        let text = prompt.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw ViewerRequestError("prompt is empty") }
        guard text.utf8.count <= Int(limits.maxPromptBytes) else {
            throw ViewerRequestError("prompt is \(text.utf8.count) bytes, more than the daemon's \(limits.maxPromptBytes)")
        }
        var request = OpenSession(prompt: text)
        if let chain {
            do { request.strategies = try StrategySpec.parseChain(chain) } catch {
                throw ViewerRequestError("chain \"\(chain)\": \(error.message)")
            }
            if let n = request.strategies?.count, n > Int(limits.maxChainLength) {
                throw ViewerRequestError("chain has \(n) strategies, more than the daemon's \(limits.maxChainLength)")
            }
        }
        for (name, value, maximum) in [("width", width, limits.maxWidth), ("height", height, limits.maxHeight)] {
            guard let value else { continue }
            let multiple = max(limits.dimensionMultiple, 1)
            guard value >= multiple, value <= maximum, value % multiple == 0 else {
                throw ViewerRequestError("\(name) \(value) must be a multiple of \(multiple) from \(multiple) to \(maximum)")
            }
        }
        if let steps, steps < 1 || steps > limits.maxSteps {
            throw ViewerRequestError("steps \(steps) must be from 1 to \(limits.maxSteps)")
        }
        if let frames, frames < 1 || frames > limits.maxFramesPerClip {
            throw ViewerRequestError("frames \(frames) must be from 1 to \(limits.maxFramesPerClip)")
        }
        if let fps, !(fps > 0 && fps <= 120) { throw ViewerRequestError("fps \(fps) must be above 0 and at most 120") }
        request.seed = seed
        request.width = width
        request.height = height
        request.steps = steps
        request.framesPerClip = frames
        request.fps = fps
        request.emission = .all
        return request
    }
}
