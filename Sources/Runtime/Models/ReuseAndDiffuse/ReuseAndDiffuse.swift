/// The VidRD authors' own model code (public repository anonymous0x233/ReuseAndDiffuse,
/// `model/modules/`), as their released checkpoint `ModelT2V.pth` needs it. Types inside mirror
/// their module names; the diffusers (ModelScope) family lives outside this namespace.
///
/// A vidrd model folder says which family its U-Net is: `unet/config.json` carries
/// `"_vidrd_family": "ReuseAndDiffuse"` (written by `tools/convert/vidrd_checkpoint.py`).
public enum ReuseAndDiffuse {
    /// The `_vidrd_family` value of a converted authors' U-Net.
    public static let familyName = "ReuseAndDiffuse"
}
