#!/bin/sh
echo "Hello from a builder-built image ($(uname -s), $(cat /etc/hostname 2>/dev/null || echo no-hostname))"
