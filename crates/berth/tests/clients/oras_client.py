#!/usr/bin/env python3
"""A small command line around the `oras` Python SDK, for berth's end-to-end tests.

Every subcommand prints one JSON document to stdout; logs go to stderr.

    oras_client.py --registry 127.0.0.1:PORT push --target e2e/oras:v1 \
        [--artifact-type TYPE] [--config PATH:MEDIATYPE] [--annotation KEY=VALUE]... \
        [--subject REF] FILE[:MEDIATYPE]...
    oras_client.py --registry 127.0.0.1:PORT pull --target e2e/oras:v1 --outdir DIR
    oras_client.py --registry 127.0.0.1:PORT tags --target e2e/oras

`--artifact-type`: version 0.2.x of the SDK has no parameter for a manifest's top-level
`artifactType`, so this script sets it by overriding `upload_manifest`, the SDK method every
push goes through; everything else (blob uploads, the manifest, `subject`) is the SDK's own.
"""

import argparse
import hashlib
import json
import os
import sys

import oras.client
import oras.defaults
import oras.oci

MANIFEST_ACCEPT = ", ".join(oras.defaults.default_manifest_accepted_media_types)


class Client(oras.client.OrasClient):
    """The SDK's client, able to set a manifest's `artifactType`."""

    def __init__(self, *args, artifact_type=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.artifact_type = artifact_type

    def upload_manifest(self, manifest, container):
        if self.artifact_type:
            manifest["artifactType"] = self.artifact_type
        return super().upload_manifest(manifest, container)


def raw_manifest(client, reference):
    """The manifest's bytes exactly as the registry serves them, and its media type."""
    container = client.get_container(reference)
    response = client.do_request(
        f"{client.prefix}://{container.manifest_url()}",
        "GET",
        headers={"Accept": MANIFEST_ACCEPT},
    )
    if response.status_code != 200:
        raise SystemExit(
            f"GET manifest {reference}: {response.status_code} {response.text}"
        )
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    return response.content, media_type, response.headers.get("Docker-Content-Digest")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push(client, args):
    subject = None
    if args.subject:
        data, media_type, _ = raw_manifest(client, args.subject)
        subject = oras.oci.Subject(
            mediaType=media_type or json.loads(data)["mediaType"],
            digest=sha256(data),
            size=len(data),
        )
    annotations = {}
    for pair in args.annotation:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--annotation takes KEY=VALUE, got {pair!r}")
        annotations[key] = value
    response = client.push(
        target=args.target,
        files=args.files,
        manifest_config=args.config,
        manifest_annotations=annotations or None,
        subject=subject,
        disable_path_validation=True,
        quiet=True,
    )
    if response.status_code != 201:
        raise SystemExit(f"manifest PUT: {response.status_code} {response.text}")
    data, media_type, _ = raw_manifest(client, args.target)
    return {
        "target": args.target,
        "status": response.status_code,
        # What the registry answered to the manifest PUT ...
        "digest_header": response.headers.get("Docker-Content-Digest"),
        "location": response.headers.get("Location"),
        "subject_header": response.headers.get("OCI-Subject"),
        # ... and what it serves for the tag afterwards.
        "digest": sha256(data),
        "size": len(data),
        "media_type": media_type,
        "manifest": json.loads(data),
    }


def pull(client, args):
    os.makedirs(args.outdir, exist_ok=True)
    files = client.pull(target=args.target, outdir=args.outdir)
    return {
        "target": args.target,
        "files": sorted(os.path.relpath(path, args.outdir) for path in files),
    }


def tags(client, args):
    return {"target": args.target, "tags": client.get_tags(args.target)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True, help="HOST:PORT, plain HTTP")
    commands = parser.add_subparsers(dest="command", required=True)

    push_parser = commands.add_parser("push", help="push files as an artifact")
    push_parser.add_argument("--target", required=True, help="REPO:TAG")
    push_parser.add_argument("--artifact-type")
    push_parser.add_argument("--config", help="PATH:MEDIATYPE of the manifest config")
    push_parser.add_argument("--annotation", action="append", default=[])
    push_parser.add_argument("--subject", help="REPO:TAG or REPO@DIGEST this refers to")
    push_parser.add_argument("files", nargs="+", help="FILE or FILE:MEDIATYPE")

    pull_parser = commands.add_parser("pull", help="pull an artifact's files")
    pull_parser.add_argument("--target", required=True)
    pull_parser.add_argument("--outdir", required=True)

    tags_parser = commands.add_parser("tags", help="list a repository's tags")
    tags_parser.add_argument("--target", required=True, help="REPO")

    args = parser.parse_args()
    client = Client(
        hostname=args.registry,
        insecure=True,
        artifact_type=getattr(args, "artifact_type", None),
    )
    # Names are given without the registry part; it is --registry.
    args.target = f"{args.registry}/{args.target}"
    if getattr(args, "subject", None):
        args.subject = f"{args.registry}/{args.subject}"
    result = {"push": push, "pull": pull, "tags": tags}[args.command](client, args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
