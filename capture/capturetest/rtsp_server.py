#!/usr/bin/python3
"""An RTSP camera for tests: GStreamer's RTSP server (Debian's
gir1.2-gst-rtsp-server-1.0) playing a video file in a loop as H.264, behind
HTTP basic authentication, the way an IP camera with a user and password
answers. Written here because Debian packages no RTSP server program.

Usage: rtsp_server.py [--passthrough] VIDEO PORT USER PASSWORD
Serves rtsp://USER:PASSWORD@127.0.0.1:PORT/stream1 and prints "ready" once
it listens; runs until killed. --passthrough sends an MP4's H.264 as it is,
once, without decoding or encoding (for benchmarks: the server then costs
next to nothing).
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    args = sys.argv[1:]
    passthrough = args[0] == "--passthrough"
    if passthrough:
        args = args[1:]
    video, port, user, password = args[:4]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)

    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)

    factory = GstRtspServer.RTSPMediaFactory()
    # multifilesrc loops the file; each client gets its own pipeline.
    if passthrough:
        factory.set_launch(f'( filesrc location="{video}" ! qtdemux ! rtph264pay name=pay0 pt=96 config-interval=1 )')
    else:
        factory.set_launch(
            f'( multifilesrc location="{video}" loop=true ! decodebin ! videoconvert ! '
            "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! "
            "rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("viewer", "media.factory.access", True)
    permissions.add_permission_for_role("viewer", "media.factory.construct", True)
    factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/stream1", factory)

    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
