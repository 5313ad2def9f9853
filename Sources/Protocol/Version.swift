public enum VidrdProtocolVersion { public static let current: UInt16 = 1 }
