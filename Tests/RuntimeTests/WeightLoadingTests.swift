import Foundation
import Testing
@testable import VidrdRuntime

/// Broken weight files and folders must fail with messages that name the file and the tensor.
@Suite struct WeightLoadingTests {
    let scratch: URL = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-weights-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }()

    func fixtureUNet() -> URL { Fixture.root.appendingPathComponent("tiny-lpb2/model/unet") }

    /// Copies the tiny U-Net folder so that a test can damage its weights.
    func copyOfUNet() throws -> URL {
        let dst = scratch.appendingPathComponent("unet-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: fixtureUNet(), to: dst)
        return dst
    }

    @Test func readsF32F16AndBF16AsTheSameValues() throws {
        let values: [Float] = [0, 1, -2.5, 0.333251953125, 65504, -0.0001220703125]
        let path = scratch.appendingPathComponent("dtypes.safetensors").path
        // Hand-built file: the same values as F32, F16 and BF16 (all exactly representable in F16;
        // BF16 keeps the top 16 bits, so compare against that truncation).
        var header: [String: Any] = [:]
        var data = Data()
        func add(_ name: String, _ dtype: String, _ bytes: Data) {
            header[name] = ["dtype": dtype, "shape": [values.count], "data_offsets": [data.count, data.count + bytes.count]]
            data.append(bytes)
        }
        add("f32", "F32", values.withUnsafeBytes { Data($0) })
        add("f16", "F16", Data(values.flatMap { v -> [UInt8] in let b = Float16(v).bitPattern; return [UInt8(b & 0xFF), UInt8(b >> 8)] }))
        add("bf16", "BF16", Data(values.flatMap { v -> [UInt8] in let b = UInt16(v.bitPattern >> 16); return [UInt8(b & 0xFF), UInt8(b >> 8)] }))
        let json = try JSONSerialization.data(withJSONObject: header)
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(data)
        try file.write(to: URL(fileURLWithPath: path))
        let st = try SafeTensorsFile(path: path)
        #expect(try st.floats("f32") == values)
        #expect(try st.floats("f16") == values)
        #expect(try st.floats("bf16") == values.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) })
    }

    @Test func truncatedFileNamesFileAndTensor() throws {
        let dir = try copyOfUNet()
        let file = dir.appendingPathComponent("diffusion_pytorch_model.safetensors")
        let data = try Data(contentsOf: file)
        try data.prefix(data.count - 100).write(to: file)
        do {
            _ = try UNet3DConditionModel(directory: dir)
            Issue.record("a truncated file loaded")
        } catch let error as WeightError {
            let text = error.description
            #expect(text.contains(file.path), "message names the file: \(text)")
            #expect(text.contains("truncated") && text.contains("tensor \""), "message names the tensor: \(text)")
        }
    }

    @Test func corruptHeaderIsRejected() throws {
        let path = scratch.appendingPathComponent("corrupt.safetensors").path
        var file = Data()
        withUnsafeBytes(of: UInt64(12).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: Array("{not json!!}".utf8))
        try file.write(to: URL(fileURLWithPath: path))
        #expect(throws: WeightError.corruptHeader(file: path, detail: "header is not a JSON object")) {
            _ = try SafeTensorsFile(path: path)
        }
        let tiny = scratch.appendingPathComponent("tiny.safetensors").path
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: tiny))
        #expect(throws: WeightError.self) { _ = try SafeTensorsFile(path: tiny) }
    }

    @Test func wrongByteLengthNamesTensor() throws {
        let path = scratch.appendingPathComponent("badlen.safetensors").path
        let header = #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#
        var file = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: Array(header.utf8))
        file.append(Data(count: 16))
        try file.write(to: URL(fileURLWithPath: path))
        do {
            _ = try SafeTensorsFile(path: path)
            Issue.record("loaded a tensor whose byte length contradicts its shape")
        } catch let error as WeightError {
            #expect(error.description.contains("tensor \"w\""))
            #expect(error.description.contains(path))
        }
    }

    @Test func missingAndUnexpectedTensorsAreAllListed() throws {
        let dir = try copyOfUNet()
        let file = dir.appendingPathComponent("diffusion_pytorch_model.safetensors")
        let original = try SafeTensorsFile(path: file.path)
        // Rewrite the checkpoint without two tensors and with one stray tensor.
        let dropped = ["conv_in.bias", "mid_block.resnets.0.conv1.weight"]
        var tensors: [(name: String, tensor: Tensor)] = []
        for name in original.names where !dropped.contains(name) { tensors.append((name, try original.tensor(name))) }
        tensors.append(("stray.weight", Tensor(zeros: [3])))
        try SafeTensorsWriter.write(tensors, to: file.path)
        do {
            _ = try UNet3DConditionModel(directory: dir)
            Issue.record("a checkpoint with missing tensors loaded")
        } catch let WeightError.mismatchedTensors(_, missing, unexpected, wrongShape) {
            #expect(missing == dropped.sorted())
            #expect(unexpected == ["stray.weight"])
            #expect(wrongShape.isEmpty)
        }
    }

    @Test func wrongShapeIsReported() throws {
        let dir = try copyOfUNet()
        let file = dir.appendingPathComponent("diffusion_pytorch_model.safetensors")
        let original = try SafeTensorsFile(path: file.path)
        var tensors: [(name: String, tensor: Tensor)] = []
        for name in original.names {
            var t = try original.tensor(name)
            if name == "conv_out.bias" { t = Tensor(zeros: [t.count + 1]) }
            tensors.append((name, t))
        }
        try SafeTensorsWriter.write(tensors, to: file.path)
        do {
            _ = try UNet3DConditionModel(directory: dir)
            Issue.record("a misshapen tensor loaded")
        } catch let WeightError.mismatchedTensors(_, _, _, wrongShape) {
            #expect(wrongShape.count == 1 && wrongShape[0].hasPrefix("conv_out.bias"))
        }
    }

    @Test func writerRoundTripsAndLeavesNoTemporaryFile() throws {
        let path = scratch.appendingPathComponent("rt.safetensors").path
        let t = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        try SafeTensorsWriter.write([("x", t)], to: path, metadata: ["k": "v"])
        let st = try SafeTensorsFile(path: path)
        #expect(try st.tensor("x") == t)
        #expect(st.metadata["k"] == "v")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty)
    }

    @Test func badConfigNamesFileAndKey() throws {
        let dir = try copyOfUNet()
        let config = dir.appendingPathComponent("config.json")
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any])
        json["layers_per_block"] = "two"
        try JSONSerialization.data(withJSONObject: json).write(to: config)
        do {
            _ = try UNet3DConditionModel(directory: dir)
            Issue.record("a config with a string layer count loaded")
        } catch let error as ModelError {
            #expect(error.description.contains(config.path) && error.description.contains("layers_per_block"))
        }
    }

    /// Sharded checkpoints (an `*.index.json` weight map) and `.fp16` variant file names load to
    /// the same model as the single file.
    @Test func shardedAndVariantFilesLoadIdentically() throws {
        let f = try Fixture("tiny-lpb2")
        let reference = try UNet3DConditionModel(directory: fixtureUNet())
        let original = try SafeTensorsFile(path: fixtureUNet().appendingPathComponent("diffusion_pytorch_model.safetensors").path)

        let sharded = try copyOfUNet()
        try FileManager.default.removeItem(at: sharded.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        let names = original.names
        var map: [String: String] = [:]
        for (i, part) in [Array(names.prefix(names.count / 2)), Array(names.dropFirst(names.count / 2))].enumerated() {
            let shard = "diffusion_pytorch_model-0000\(i + 1)-of-00002.safetensors"
            try SafeTensorsWriter.write(try part.map { ($0, try original.tensor($0)) }, to: sharded.appendingPathComponent(shard).path)
            for n in part { map[n] = shard }
        }
        try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": map])
            .write(to: sharded.appendingPathComponent("diffusion_pytorch_model.safetensors.index.json"))

        let variant = try copyOfUNet()
        try FileManager.default.moveItem(at: variant.appendingPathComponent("diffusion_pytorch_model.safetensors"),
                                         to: variant.appendingPathComponent("diffusion_pytorch_model.fp16.safetensors"))

        let cond = try reference.conditioning(encoderHiddenStates: f.tensor("unet.encoder_hidden_states"))
        var ws = Workspace()
        let expected = try reference(f.tensor("unet.sample"), timesteps: [901, 21], conditioning: cond, workspace: &ws)
        for dir in [sharded, variant] {
            let model = try UNet3DConditionModel(directory: dir)
            let c = try model.conditioning(encoderHiddenStates: f.tensor("unet.encoder_hidden_states"))
            #expect(try model(f.tensor("unet.sample"), timesteps: [901, 21], conditioning: c, workspace: &ws) == expected)
        }
    }

    @Test func notAModelFolder() throws {
        #expect(throws: WeightError.self) { _ = try TextToVideoPipeline(modelDirectory: scratch) }
    }
}
