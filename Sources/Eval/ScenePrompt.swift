/// What a prompt in the procedural dataset's vocabulary asks for, read with the grammar of
/// data.py's captions: a subject "[a|an] [size] colour shape", a background phrase
/// "on|over|in front of a|an colour [texture] background|backdrop", a motion phrase (MOTION_SYN,
/// PAN_SYN), in any order, with the caption templates' fillers ("a video of", "is", "left:", commas).
/// Unknown words are ignored; an attribute the prompt does not name is nil.
public struct ScenePrompt: Sendable, Equatable {
    public var colour: String?
    public var background: String?
    /// "solid" when the background phrase names no texture.
    public var texture: String?
    public var shape: String?
    public var size: String?
    /// A MOTIONS name of data.py ("left", …, "pan_left", "zoom_in").
    public var motion: String?

    public init(colour: String? = nil, background: String? = nil, texture: String? = nil, shape: String? = nil,
                size: String? = nil, motion: String? = nil) {
        self.colour = colour
        self.background = background
        self.texture = texture
        self.shape = shape
        self.size = size
        self.motion = motion
    }

    public init(parsing text: String) {
        var words = Self.tokenize(text)
        self.init()
        // The background phrase first: its colour must not be read as the object's.
        if let (range, colour, texture) = Self.backgroundPhrase(words) {
            background = colour
            self.texture = texture
            words.removeSubrange(range)
        }
        // Then the motion, longest phrase first ("bouncing up and down" over "bouncing"; "moving in
        // a circle" must not leave "circle" behind as a shape).
        if let (range, name) = Self.longestPhrase(in: words, SceneVocabulary.motionSynonyms.map { ($0.name, $0.phrases) }) {
            motion = name
            words.removeSubrange(range)
        }
        if let (range, name) = Self.longestPhrase(in: words, SceneVocabulary.shapeSynonyms.map { ($0.name, $0.words) }) {
            shape = name
            words.removeSubrange(range)
        }
        size = Self.longestPhrase(in: words, SceneVocabulary.sizeSynonyms.map { ($0.name, $0.words) })?.1
        colour = words.lazy.compactMap(SceneVocabulary.colour(ofWord:)).first
    }

    /// The motion the scene scorer can check from the object's path, when the prompt asks for one.
    public var scoredMotion: SceneMotion? { motion.flatMap(SceneMotion.init(rawValue:)).flatMap { $0 == .other ? nil : $0 } }

    /// Unit direction in image coordinates (y grows downward) for left/right/up/down.
    public var direction: (dx: Double, dy: Double)? {
        switch motion {
        case "left": return (-1, 0)
        case "right": return (1, 0)
        case "up": return (0, -1)
        case "down": return (0, 1)
        default: return nil
        }
    }

    static func tokenize(_ text: String) -> [String] {
        let cleaned = text.lowercased().map { $0.isLetter || $0.isNumber ? $0 : " " }
        return String(cleaned).split(separator: " ").map(String.init)
    }

    /// Finds "prep article colour texture… noun" by walking back from the noun, so that a phrase
    /// without preposition or article ("blue background") still counts. Returns the tokens to
    /// remove, the colour (nil when none precedes the noun) and the texture.
    static func backgroundPhrase(_ words: [String]) -> (Range<Int>, String?, String)? {
        guard let noun = words.firstIndex(where: SceneVocabulary.backgroundNouns.contains) else { return nil }
        var i = noun
        var texture = "solid"
        // Texture words (one or two tokens: "polka dot").
        textures: while i > 0 {
            for (name, phrases) in SceneVocabulary.textureWords {
                for phrase in phrases {
                    let p = phrase.split(separator: " ").map(String.init)
                    if i - p.count >= 0, Array(words[(i - p.count)..<i]) == p {
                        texture = name
                        i -= p.count
                        continue textures
                    }
                }
            }
            break
        }
        var colour: String?
        if i > 0, let c = SceneVocabulary.colour(ofWord: words[i - 1]) {
            colour = c
            i -= 1
        }
        if i > 0, ["a", "an", "the"].contains(words[i - 1]) { i -= 1 }
        if i >= 3, Array(words[(i - 3)..<i]) == ["in", "front", "of"] {
            i -= 3
        } else if i > 0, ["on", "over", "against"].contains(words[i - 1]) {
            i -= 1
        }
        return (i..<(noun + 1), colour, texture)
    }

    /// The longest (then earliest) occurrence of any phrase, with its entry's name.
    static func longestPhrase(in words: [String], _ table: [(String, [String])]) -> (Range<Int>, String)? {
        var best: (Range<Int>, String)?
        for (name, phrases) in table {
            for phrase in phrases where !phrase.isEmpty {
                let p = phrase.split(separator: " ").map(String.init)
                guard p.count <= words.count else { continue }
                for start in 0...(words.count - p.count) where Array(words[start..<(start + p.count)]) == p {
                    let r = start..<(start + p.count)
                    if let b = best, b.0.count > r.count || (b.0.count == r.count && b.0.lowerBound <= r.lowerBound) { break }
                    best = (r, name)
                    break
                }
            }
        }
        return best
    }
}
