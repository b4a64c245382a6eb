/* The setup page (app.conf [ui] setup_view): decryption secrets into storage/passwords. */
require([
    "jquery",
    "splunkjs/mvc",
    "../app/smbtrail/smbtrail_secrets",
    "splunkjs/mvc/simplexml/ready!"
], function ($, mvc, secrets) {
    "use strict";
    var service = mvc.createService({owner: "nobody", app: "smbtrail"});

    function say(text, bad) {
        $("#smbtrail-status").text(text).css("color", bad ? "#b22" : "#333");  // text(): never markup
    }

    function refresh() {
        secrets.names(service, function (err, names) {
            var list = $("#smbtrail-secrets").empty();
            if (err) {
                return say("Cannot list the stored secrets: check your role's list_storage_passwords capability.", true);
            }
            names.forEach(function (name) {
                var remove = $("<button type='button' class='btn btn-small'>").text("Remove");
                remove.on("click", function () {
                    secrets.remove(service, name, function (removeErr) {
                        say(removeErr ? removeErr.message : name + " removed.", !!removeErr);
                        refresh();
                    });
                });
                list.append($("<li>").append($("<code>").text(name), " ", remove));
            });
            if (!names.length) {
                list.append($("<li>").text("none stored"));
            }
        });
    }

    $("#smbtrail-save").on("click", function () {
        var kind = $("#smbtrail-kind").val(), label = $.trim($("#smbtrail-label").val());
        var field = $("#smbtrail-secret"), secret = field.val();
        secrets.store(service, kind, label, secret, function (err) {
            field.val("");  // the secret does not stay in the page
            if (err) {
                return say(err.message, true);
            }
            say(secrets.username(kind, label) + " stored. Name it in the input's secrets setting (or use *).");
            service.post("/servicesNS/nobody/smbtrail/apps/local/smbtrail", {configured: true}, function () {});
            refresh();
        });
    });
    refresh();
});
