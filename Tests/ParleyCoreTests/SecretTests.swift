import Foundation
import Testing
import ParleyCore

@Suite struct SecretTests {
    @Test(
        "A setting comes from NAME_FILE (trimmed) before NAME; empty or unset is nil; an unreadable file is an error naming the variable and the file, not a value"
    )
    func secretSources() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("parley-secret-\(UUID().uuidString)")
        try "s3cret-from-file\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try Secret.read("KEY", from: ["KEY": "direct"]) == "direct")
        #expect(try Secret.read("KEY", from: ["KEY": "direct", "KEY_FILE": file.path]) == "s3cret-from-file")
        #expect(try Secret.read("KEY", from: ["KEY_FILE": file.path]) == "s3cret-from-file")
        #expect(try Secret.read("KEY", from: ["KEY": ""]) == nil)
        #expect(try Secret.read("KEY", from: ["KEY": "direct", "KEY_FILE": ""]) == "direct")
        #expect(try Secret.read("KEY", from: [:]) == nil)
        do {
            _ = try Secret.read("KEY", from: ["KEY": "direct-value", "KEY_FILE": "/nonexistent/parley-secret"])
            Issue.record("an unreadable file must be an error")
        } catch {
            #expect(error.description == "KEY_FILE: cannot read /nonexistent/parley-secret")
            #expect(!error.description.contains("direct-value"))
        }
    }
}
