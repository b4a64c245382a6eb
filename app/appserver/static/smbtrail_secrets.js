/*
 * Decryption secrets of the smbtrail capture input, in Splunk's credential store (storage/passwords,
 * realm "smbtrail", this app's namespace). The username says what the secret is, as the input reads it
 * (src/smbtrail/splunk/secrets.py): password:<label>, nthash:<label>, sessionkey:<session id hex>.
 * Pure logic over a splunkjs Service, so it runs in the setup page and under node in the tests.
 * A secret is only ever sent to storage/passwords: never shown, logged or put in a search.
 */
(function (root, factory) {
    if (typeof define === "function" && define.amd) {
        define([], factory);
    } else if (typeof module === "object" && module.exports) {
        module.exports = factory();
    }
}(this, function () {
    "use strict";
    var REALM = "smbtrail";
    var HEX = /^[0-9A-Fa-f]+$/;
    var LABEL = /^[A-Za-z0-9_.@-]{1,64}$/;

    function username(kind, label) {
        return kind + ":" + label;
    }

    /* The reason a secret cannot be stored, or null. Never repeats the secret. */
    function problem(kind, label, secret) {
        if (kind === "sessionkey") {
            if (!HEX.test(label) || label.length !== 16) {
                return "a session id is 16 hex digits (8 bytes in wire order)";
            }
            return HEX.test(secret) && secret.length % 2 === 0 ? null : "a session key is hex digits";
        }
        if (!LABEL.test(label)) {
            return "a label is 1-64 letters, digits or . _ @ -";
        }
        if (kind === "nthash") {
            return HEX.test(secret) && secret.length === 32 ? null : "an NT hash is 32 hex digits";
        }
        if (kind === "password") {
            return secret.length > 0 ? null : "the password is empty";
        }
        return "unknown kind of secret";
    }

    function collection(service) {
        return service.storagePasswords({owner: "nobody", app: "smbtrail"});
    }

    /* Store (or replace) one secret; done(error) with a message that names the secret, not its value. */
    function store(service, kind, label, secret, done) {
        var why = problem(kind, label, secret);
        var name = username(kind, label);
        if (why) {
            return done(new Error(name + ": " + why));
        }
        var passwords = collection(service);
        passwords.create({name: name, realm: REALM, password: secret}, function (err) {
            if (!err) {
                return done(null);
            }
            if (err.status !== 409) {
                return done(new Error(name + ": not stored (HTTP " + (err.status || "?") + ")"));
            }
            passwords.fetch(function (fetchErr, fetched) {  // it exists: replace its password
                var found = !fetchErr && fetched.item(REALM + ":" + name + ":");
                if (!found) {
                    return done(new Error(name + ": exists but cannot be updated"));
                }
                found.update({password: secret}, function (updateErr) {
                    done(updateErr ? new Error(name + ": not updated") : null);
                });
            });
        });
    }

    /* The usernames stored in realm smbtrail (their secrets are not read out). */
    function names(service, done) {
        collection(service).fetch({search: "realm=" + REALM, count: 0}, function (err, fetched) {
            if (err) {
                return done(err, []);
            }
            var out = [];
            fetched.list().forEach(function (entity) {
                var content = entity.properties();
                if (content.realm === REALM) {
                    out.push(content.username);
                }
            });
            done(null, out.sort());
        });
    }

    function remove(service, name, done) {
        collection(service).del(REALM + ":" + name + ":", {}, function (err) {
            done(err ? new Error(name + ": not removed") : null);
        });
    }

    return {REALM: REALM, username: username, problem: problem, store: store, names: names, remove: remove};
}));
