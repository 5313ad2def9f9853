/// The procedural dataset's vocabulary (tools/train/data.py: COLOURS, BG_COLOURS, COLOUR_SYN,
/// SHAPE_SYN, SIZE_SYN, MOTION_SYN, PAN_SYN, TEXTURE_WORD). A copy, because CI has no Python;
/// `EvalTests` compares it with the fixture's dump of data.py, so a change there fails a test
/// here. Arrays of pairs keep data.py's order, which decides ties.
public enum SceneVocabulary {
    /// Object colours, RGB 0–255.
    public static let colours: [(name: String, rgb: SIMD3<Float>)] = [
        ("red", [220, 30, 30]), ("green", [40, 180, 50]), ("blue", [40, 70, 220]), ("yellow", [240, 220, 40]),
        ("orange", [245, 140, 20]), ("purple", [140, 50, 190]), ("white", [245, 245, 245]),
        ("black", [20, 20, 20]), ("pink", [250, 130, 190]), ("cyan", [40, 210, 220]),
    ]
    /// Background colours: the object colours and gray.
    public static let backgroundColours: [(name: String, rgb: SIMD3<Float>)] = colours + [("gray", [128, 128, 128])]

    /// Words for a colour name other than the name itself.
    public static let colourSynonyms: [String: [String]] = ["gray": ["gray", "grey"], "purple": ["purple", "violet"]]

    public static let shapeSynonyms: [(name: String, words: [String])] = [
        ("circle", ["circle", "disc", "dot"]), ("square", ["square", "box"]), ("triangle", ["triangle"]),
        ("star", ["star"]), ("diamond", ["diamond", "rhombus"]), ("ring", ["ring", "hoop"]),
        ("cross", ["cross", "plus sign"]),
    ]
    /// data.py's "medium" also has the empty word (captions often leave the size out).
    public static let sizeSynonyms: [(name: String, words: [String])] = [
        ("small", ["small", "tiny", "little"]), ("medium", ["medium"]), ("large", ["large", "big", "huge"]),
    ]
    public static let motionSynonyms: [(name: String, phrases: [String])] = [
        ("left", ["moving left", "moving to the left", "sliding left", "going left", "travelling left"]),
        ("right", ["moving right", "moving to the right", "sliding right", "going right", "travelling right"]),
        ("up", ["moving up", "rising", "going up", "floating upward", "moving upwards"]),
        ("down", ["moving down", "falling", "going down", "sinking", "moving downwards"]),
        ("bouncing", ["bouncing", "bouncing up and down", "hopping"]),
        ("rotating", ["rotating", "spinning", "turning around"]),
        ("growing", ["growing", "getting bigger", "expanding"]),
        ("shrinking", ["shrinking", "getting smaller", "contracting"]),
        ("orbiting", ["moving in a circle", "orbiting", "circling around"]),
        ("still", ["standing still", "resting", "not moving"]),
        ("pan_left", ["the camera pans left", "camera panning to the left", "panning left"]),
        ("pan_right", ["the camera pans right", "camera panning to the right", "panning right"]),
        ("zoom_in", ["the camera zooms in", "zooming in", "camera zooming in"]),
    ]
    /// Texture words of a background phrase ("solid" has none).
    public static let textureWords: [(name: String, words: [String])] = [
        ("stripes", ["striped"]), ("checker", ["checkered", "checkerboard"]), ("dots", ["dotted", "polka dot"]),
        ("gradient", ["gradient"]),
    ]
    public static let backgroundNouns = ["background", "backdrop"]

    /// The words of a colour (its name and synonyms).
    public static func words(forColour name: String) -> [String] { colourSynonyms[name] ?? [name] }

    /// Canonical colour of a word (background palette, so "grey" and "gray" are known too).
    public static func colour(ofWord word: String) -> String? {
        backgroundColours.first { words(forColour: $0.name).contains(word) }?.name
    }

    // How data.py draws textures (render_background): base + 0.35·m·lum, m ∈ [0, 1], lum = 255 − base
    // when the base is dark (channel mean < 110), else −0.45·base. The base is jittered by up to ±12
    // per channel (jitter(rng, ..., 12)).
    static let textureStrength: Float = 0.35
    static let darkBaseMean: Float = 110
    static let baseJitter: Float = 12
}
