#!/bin/sh
. /etc/app.conf
echo "$greeting, ${1:-nobody}! ($(cat /srv/app/built.txt))"
