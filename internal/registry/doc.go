// Package registry owns builder's conversation with image registries: it
// pulls images into the store, pushes stored images out, logs in and out,
// searches, lists tags, and offers the blob and manifest primitives the
// registry build cache stands on.
//
// It is built on go-containerregistry: name parsing, the /v2/ ping, the token
// dance (basic and bearer, refreshed on 401), credentials from the docker
// config (authn.DefaultKeychain, which runs credsStore and credHelpers), retry
// of failed round trips, and manifest, tag and catalog requests all come from
// there. What it cannot do is done here, on its authenticated transport:
// blob downloads resume after a broken connection with a Range request, and
// blob uploads (HEAD, cross-repository mount, POST, PATCH, PUT) say per blob
// whether it was found, mounted or uploaded and go in chunks when the
// registry asks for them (OCI-Chunk-Min-Length). Pulled blobs stream into
// store ingests, verified as they arrive.
// Only image-spec types (ocispec.Descriptor, digest.Digest) cross the
// package boundary.
//
// # References and transport security
//
// References are read as docker reads them: "app" is
// docker.io/library/app:latest. A registry is spoken to over HTTPS with
// verified certificates, except:
//
//   - localhost and hosts in 127.0.0.0/8 or ::1 are insecure registries by
//     default, as in docker: HTTPS without certificate verification is tried
//     first, then plain HTTP;
//   - so is every registry named in the config file's insecure-registries,
//     and every registry when Options.Insecure is set;
//   - a mirror given with an http:// URL is spoken to over plain HTTP.
//
// Plain HTTP to any other host is refused, even where go-containerregistry
// would fall back to it (RFC 1918 addresses, *.local).
// Options.RootCAs, when set, replaces the system roots for verified HTTPS.
//
// # Config file
//
// The registry section of builder's config.toml (Options.ConfigFile; by
// default /etc/builder/config.toml and then
// $XDG_CONFIG_HOME/builder/config.toml, else ~/.config/builder/config.toml,
// both optional) looks like this:
//
//	# registries spoken to over HTTPS without verification, or plain HTTP:
//	# "host:port" matches that port only, "host" every port of host, and
//	# a CIDR every registry named by an IP address inside it
//	insecure-registries = ["registry.lan:5000", "10.0.0.0/8"]
//
//	# mirrors tried in order before the registry itself, keyed by registry
//	[registry-mirrors]
//	"docker.io" = ["https://mirror.example", "http://10.0.0.5:5000"]
//
// When both default files exist, insecure-registries are merged and the
// user's mirror list for a registry replaces the system's. Keys this package
// does not know are left to other readers of the file.
//
// A pull (and FetchManifest and FetchBlob) tries each mirror of the
// reference's registry in turn and falls back to the registry itself when a
// mirror fails in any way: a connection error, a 5xx answer, a missing
// manifest. Blobs are fetched from the endpoint that served the manifest,
// falling forward the same way. Pushes, tag lists and catalogs always go to
// the registry itself.
//
// # Faults
//
// Requests without a body (GET, HEAD, upload initiation) to the registry
// itself are retried with exponential backoff on connection errors and on 408,
// 429, 500, 502, 503 and 504; mirrors are not retried, since falling back is
// faster. A blob download whose connection breaks mid-body resumes where it
// stopped (Range: bytes=N-), and a blob upload that fails is started again.
// Every pulled blob is checked against its descriptor's size and digest, and
// every layer against its diffID, in the pass that writes it into a store
// ingest; nothing unverified is committed. Blobs are committed as they finish,
// so pulling again after an interruption fetches only what is missing.
package registry
