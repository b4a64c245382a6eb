// The setup page's secret handling (app/appserver/static/smbtrail_secrets.js) against a stand-in of
// splunkjs' storage/passwords collection that records every request. Run by tests/test_splunk_setup.py.
"use strict";
const assert = require("assert");
const secrets = require(process.argv[2]);

function fakeService(existing) {
    const calls = [];
    const stored = new Map(existing.map(([name, realm]) => [`${realm}:${name}:`, {username: name, realm}]));
    const collection = (ns) => ({
        create(params, done) {
            calls.push(["create", ns, params]);
            const key = `${params.realm}:${params.name}:`;
            if (stored.has(key)) return done({status: 409});
            stored.set(key, {username: params.name, realm: params.realm});
            done(null);
        },
        fetch(options, done) {
            if (typeof options === "function") { done = options; options = {}; }
            calls.push(["fetch", ns, options]);
            const entities = [...stored.entries()].map(([key, content]) => ({
                key, properties: () => content,
                update(params, cb) { calls.push(["update", ns, key, params]); cb(null); },
            }));
            done(null, {list: () => entities, item: (key) => entities.find((e) => e.key === key)});
        },
        del(key, params, done) { calls.push(["del", ns, key]); stored.delete(key); done(null); },
    });
    return {calls, storagePasswords: (ns) => collection(ns)};
}

const SECRET = "S3cret-Pass!";
const service = fakeService([["sessionkey:3d00009400480000", "smbtrail"], ["admin:other", "other_realm"]]);
const results = [];
const record = (err) => results.push(err ? err.message : "ok");

secrets.store(service, "password", "lab", SECRET, record);
secrets.store(service, "nthash", "lab", "not-hex", record);
secrets.store(service, "sessionkey", "3d00009400480000", "00112233445566778899aabbccddeeff", record);
secrets.store(service, "sessionkey", "3d0000", "0011", record);
secrets.store(service, "password", "a b", SECRET, record);
assert.deepStrictEqual(results, ["ok", "nthash:lab: an NT hash is 32 hex digits", "ok",
    "sessionkey:3d0000: a session id is 16 hex digits (8 bytes in wire order)",
    "password:a b: a label is 1-64 letters, digits or . _ @ -"]);
// every request goes to this app's namespace and realm smbtrail; an existing key is updated, not duplicated
for (const [verb, ns] of service.calls) {
    assert.deepStrictEqual(ns, {owner: "nobody", app: "smbtrail"}, verb);
}
const creates = service.calls.filter((c) => c[0] === "create").map((c) => c[2]);
assert.deepStrictEqual(creates.map((c) => [c.name, c.realm]),
    [["password:lab", "smbtrail"], ["sessionkey:3d00009400480000", "smbtrail"]]);
assert.deepStrictEqual(service.calls.filter((c) => c[0] === "update").map((c) => c[2]),
    ["smbtrail:sessionkey:3d00009400480000:"]);
// no message ever holds a secret
assert.ok(results.every((m) => !m.includes(SECRET) && !m.includes("00112233")));
// listing names only this realm's usernames, and asks the server for this realm only
secrets.names(service, (err, names) => {
    assert.strictEqual(err, null);
    assert.deepStrictEqual(names, ["password:lab", "sessionkey:3d00009400480000"]);
    const fetches = service.calls.filter((c) => c[0] === "fetch").map((c) => c[2]);
    assert.ok(fetches.some((o) => o.search === "realm=smbtrail"));
});
secrets.remove(service, "password:lab", (err) => assert.strictEqual(err, null));
assert.deepStrictEqual(service.calls.filter((c) => c[0] === "del").map((c) => c[2]), ["smbtrail:password:lab:"]);
console.log("secrets_check: ok");
