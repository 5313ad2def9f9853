import Foundation
import Testing
@testable import VidrdRuntime

/// The default-model lookup that the daemon and the offline tool share.
@Suite struct EmbeddedModelTests {
    func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-embedded-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    func makeModel(under root: URL) throws {
        let folder = root.appendingPathComponent(EmbeddedModel.relativePath)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: folder.appendingPathComponent("model_index.json"))
    }

    @Test func findsTheModelUnderTheCurrentDirectory() throws {
        let root = try scratch()
        try makeModel(under: root)
        let found = EmbeddedModel.locate(currentDirectory: root.path, executablePath: "")
        #expect(found?.path == root.appendingPathComponent("Models/vidrd-tiny").standardizedFileURL.path)
    }

    @Test func findsTheModelUnderThePackageRootOfTheExecutable() throws {
        let root = try scratch()
        try makeModel(under: root)
        try Data().write(to: root.appendingPathComponent("Package.swift"))
        let bin = root.appendingPathComponent(".build/release")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let elsewhere = try scratch()
        let found = EmbeddedModel.locate(currentDirectory: elsewhere.path, executablePath: bin.appendingPathComponent("vidrd").path)
        #expect(found?.path == root.appendingPathComponent("Models/vidrd-tiny").standardizedFileURL.path)
    }

    @Test func aFolderWithoutModelIndexDoesNotCount() throws {
        let root = try scratch()
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent(EmbeddedModel.relativePath), withIntermediateDirectories: true)
        #expect(EmbeddedModel.locate(currentDirectory: root.path, executablePath: "") == nil)
    }
}
