import Foundation
import Testing
@testable import ParleyPostgres
import ParleyCore

@Suite struct ConfigurationTests {
    @Test func parsesFullURLWithPercentDecoding() throws {
        let c = try PostgresConfiguration(
            url: "postgres://us%40er:p%3Aa%2Fss%20word@db.example.com:6543/my%20db?sslmode=require&application_name=parley%20api")
        #expect(c.user == "us@er")
        #expect(c.password == "p:a/ss word")
        #expect(c.host == "db.example.com")
        #expect(c.port == 6543)
        #expect(c.database == "my db")
        #expect(c.sslMode == .require)
        #expect(c.applicationName == "parley api")
    }

    @Test func defaultsAndSchemes() throws {
        let c = try PostgresConfiguration(url: "postgresql://parley@localhost/parley")
        #expect(c.port == 5432)
        #expect(c.password == nil)
        #expect(c.sslMode == .prefer)
        let v6 = try PostgresConfiguration(url: "postgres://u:p@[::1]:5433/d?connect_timeout=3")
        #expect(v6.host == "::1")
        #expect(v6.port == 5433)
        #expect(v6.connectTimeout == 3)
    }

    @Test func redactsPassword() throws {
        let c = try PostgresConfiguration(url: "postgres://parley:s3cr%23t-pw@127.0.0.1:5432/parley")
        #expect(!c.description.contains("s3cr"))
        #expect(!"\(c)".contains("s3cr"))
        #expect(c.description.contains("parley:***@127.0.0.1:5432/parley"))
        let noPass = PostgresConfiguration(user: "u", database: "d")
        #expect(!noPass.description.contains("***"))
    }

    @Test func rejectsBadURLsWithoutEchoingThem() throws {
        for url in [
            "mysql://u:secretpw@h/d", "postgres://u:secretpw@h:99999/d", "postgres://u:secretpw@h/",
            "postgres://u:secretpw@h/d?sslmode=bogus", "postgres://u:secretpw@h/d?foo=bar", "postgres://h/d",
            "postgres://u:secret%zzpw@h/d"
        ] {
            let error = #expect(throws: PostgresError.self) { try PostgresConfiguration(url: url) }
            #expect(error?.kind == .invalidConfiguration)
            #expect(error.map { !$0.description.contains("secret") } ?? false, "error echoes the password: \(url)")
        }
    }

    @Test func sessionSettingsAreSentAtConnect() {
        let p = Dictionary(uniqueKeysWithValues: PostgresConfiguration(user: "u", database: "d").libpqParameters)
        #expect(p["options"]?.contains("TimeZone=UTC") == true)
        #expect(p["options"]?.contains("DateStyle=ISO") == true)
        #expect(p["application_name"] == "parley")
    }
}

@Suite struct NumericTextTests {
    @Test(arguments: [
        "12345678901234567890.123456789", "-0.01", "0", "1", "-1", "0.000000001", "100", "99999999999999999999999999999999999999"
    ])
    func parsesExactlyAndFormatsBack(_ text: String) throws {
        let d = try PostgresNumeric.parse(text)
        #expect(PostgresNumeric.format(d) == text)
    }

    @Test func exactValues() throws {
        let d = try PostgresNumeric.parse("12345678901234567890.123456789")
        let expected = Decimal(sign: .plus, exponent: -9, significand: Decimal(string: "12345678901234567890123456789")!)
        #expect(d == expected)
        #expect(try PostgresNumeric.parse("-0.01") == Decimal(sign: .minus, exponent: -2, significand: 1))
        #expect(try PostgresNumeric.parse("0.000") == 0)
        #expect(try PostgresNumeric.parse("-0") == 0)
        #expect(try PostgresNumeric.parse("1.50") == Decimal(sign: .plus, exponent: -1, significand: 15))
        #expect(try PostgresNumeric.parse("1e3") == 1000)
        #expect(try PostgresNumeric.parse("NaN").isNaN)
    }

    @Test func rejectsWhatDecimalCannotHold() {
        for bad in ["", "abc", "1.2.3", "Infinity", "-Infinity", "1x", "123456789012345678901234567890123456789"] {
            #expect(throws: PostgresError.self) { try PostgresNumeric.parse(bad) }
        }
    }
}

@Suite struct TimestampTextTests {
    func micros(_ d: Date) -> Int64 { Int64((d.timeIntervalSince1970 * 1_000_000).rounded()) }

    @Test func parsesISOOutput() throws {
        let d = try PostgresTimestamp.parse("2023-11-14 22:13:20.123456+00")
        let us = (d.timeIntervalSince1970 * 1_000_000).rounded()
        #expect(us == 1_700_000_000_123_456)
        #expect(try PostgresTimestamp.parse("2023-11-14 22:13:20+00").timeIntervalSince1970 == 1_700_000_000)
        #expect(try PostgresTimestamp.parse("2023-11-15 03:43:20.5+05:30").timeIntervalSince1970 == 1_700_000_000.5)
        #expect(try PostgresTimestamp.parse("2023-11-14 14:13:20-08").timeIntervalSince1970 == 1_700_000_000)
        #expect(try PostgresTimestamp.parse("1970-01-01 00:00:00").timeIntervalSince1970 == 0)
        #expect(micros(try PostgresTimestamp.parse("1969-12-31 23:59:59.999999+00")) == -1)
        #expect(micros(try PostgresTimestamp.parse("0001-01-01 00:00:00+00 BC")) == -62_167_219_200 * 1_000_000)
        #expect(PostgresTimestamp.format(try PostgresTimestamp.parse("0001-01-01 00:00:00+00 BC")) == "0001-01-01 00:00:00.000000+00 BC")
    }

    @Test func formatsUTCWithMicroseconds() throws {
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: 1_700_000_000.123456)) == "2023-11-14 22:13:20.123456+00")
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: -0.000001)) == "1969-12-31 23:59:59.999999+00")
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01 00:00:00.000000+00")
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: 1_709_208_000)) == "2024-02-29 12:00:00.000000+00")
    }

    @Test func roundTripsToTheMicrosecond() throws {
        for t in [0.0, 1_700_000_000.123456, -1_234_567_890.654321, 4_102_444_799.999999, Date().timeIntervalSince1970] {
            let d = Date(timeIntervalSince1970: t)
            let back = try PostgresTimestamp.parse(PostgresTimestamp.format(d))
            #expect(abs(back.timeIntervalSince(d)) < 0.000001)
        }
    }

    @Test func rejectsGarbage() {
        for bad in ["", "infinity", "2023-13-01 00:00:00", "2023-11-14", "2023-11-14 22:13:20.1234567+00", "2023-11-14 22:13:20 junk"] {
            #expect(throws: PostgresError.self) { try PostgresTimestamp.parse(bad) }
        }
    }
}

@Suite struct MiscUnitTests {
    @Test func identifiers() throws {
        #expect(try PostgresIdentifier("svc_orders").quoted == "\"svc_orders\"")
        for bad in ["", "Users", "1abc", "a\"b", "a;b", "a b", String(repeating: "a", count: 64)] {
            #expect(throws: PostgresError.self) { try PostgresIdentifier(bad) }
        }
    }

    @Test func byteaHex() throws {
        #expect(try PostgresBytea.decodeHex("\\x00ff10Ab") == [0, 255, 16, 171])
        #expect(try PostgresBytea.decodeHex("\\x") == [])
        #expect(throws: PostgresDecodingFailure.self) { try PostgresBytea.decodeHex("\\x0") }
    }

    @Test func errorDescriptionIsOneLine() {
        let e = PostgresError(kind: .server, message: "duplicate key\nvalue", sqlState: "23505", detail: "Key (id)=(1)\n exists.")
        #expect(!e.description.contains("\n"))
        #expect(e.description.contains("[23505]"))
        #expect(e.isUniqueViolation)
        #expect(PostgresError(kind: .server, message: "x", sqlState: "57P01").isConnectionError)
        #expect(!PostgresError(kind: .server, message: "x", sqlState: "42601").isConnectionError)
    }
}

@Suite struct MigrationLoadingTests {
    func dir(_ files: [String: String]) throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("parley-mig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        for (name, sql) in files { try sql.write(to: d.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        return d
    }

    @Test func loadsSortedByVersion() throws {
        let d = try dir([
            "0010_add_index.sql": "select 10", "0002_create_users.sql": "select 2", "0001_init.sql": "select 1",
            "README.md": "ignored"
        ])
        defer { try? FileManager.default.removeItem(at: d) }
        let m = try Migration.load(directory: d)
        #expect(m.map(\.version) == [1, 2, 10])
        #expect(m.map(\.name) == ["init", "create_users", "add_index"])
        #expect(m[0].checksum == SHA256.hex(Array("select 1".utf8)))
    }

    @Test func duplicateVersionsAreAnError() throws {
        let d = try dir(["0001_a.sql": "select 1", "001_b.sql": "select 2"])
        defer { try? FileManager.default.removeItem(at: d) }
        let e = #expect(throws: PostgresError.self) { try Migration.load(directory: d) }
        #expect(e?.kind == .migration)
        #expect(e?.message.contains("duplicate migration version 1") == true)
    }

    @Test(arguments: ["create_x.sql", "0001.sql", "0001_.sql", "v1_init.sql", "0001_bad name.sql"])
    func badNamesAreAnError(_ name: String) throws {
        let d = try dir([name: "select 1"])
        defer { try? FileManager.default.removeItem(at: d) }
        let e = #expect(throws: PostgresError.self) { try Migration.load(directory: d) }
        #expect(e?.message.contains("bad migration file name") == true)
    }

    @Test func duplicateVersionsInCodeAreAnError() {
        #expect(throws: PostgresError.self) {
            try Migrator(migrations: [.init(version: 1, name: "a", sql: ""), .init(version: 1, name: "b", sql: "")])
        }
        #expect(throws: PostgresError.self) { try Migrator(migrations: [], schema: "Bad-Schema") }
    }
}
