#!/usr/bin/perl
# bench-helper.pl — the parts of scripts/bench-workloads.sh that a shell does
# badly: timing a command on the monotonic clock, and writing the benchmark's
# file trees deterministically (the same seed gives the same bytes, so every
# run and every machine measures the same data).
#
#   bench-helper.pl time OUT CMD [ARG]...
#       runs CMD and writes "SECONDS STATUS" to OUT: the wall time from just
#       before the fork to just after the wait, on CLOCK_MONOTONIC, and the
#       exit status (128+N for a signal). Exits with CMD's status.
#   bench-helper.pl base DIR NSMALL LARGEBYTES
#       writes NSMALL small files (64 B to 2 KiB, about 1 KiB on average) in
#       DIR/data/small/dNNN/, 100 a directory, and LARGEBYTES bytes of larger
#       files (1 to 8 MiB) in DIR/data/large/.
#   bench-helper.pl context DIR NFILES
#       writes NFILES text files of 100 B to 4 KiB in DIR/pkgNNN/modN/, 100 a
#       directory, like the 20,000-file context of cmd/builder/bench_test.go.
use strict;
use warnings;
use File::Path qw(make_path);
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);

my $MiB = 1 << 20;

sub usage { die "usage: bench-helper.pl time OUT CMD... | base DIR NSMALL LARGEBYTES | context DIR NFILES\n" }

# pool returns $size pseudo-random bytes from a fixed seed. Perl's rand is
# its own drand48 (since 5.20), so the bytes are the same everywhere.
sub pool {
	my ($seed, $size) = @_;
	srand($seed);
	return pack('L*', map { int(rand(4294967296)) } 1 .. $size / 4);
}

sub write_file {
	my ($path, @chunks) = @_;
	open(my $f, '>:raw', $path) or die "creating $path: $!\n";
	print $f @chunks or die "writing $path: $!\n";
	close($f) or die "closing $path: $!\n";
}

sub cmd_time {
	my ($out, @cmd) = @_;
	usage() unless defined $out && @cmd;
	my $t0 = clock_gettime(CLOCK_MONOTONIC);
	system { $cmd[0] } @cmd;
	my $t1 = clock_gettime(CLOCK_MONOTONIC);
	my $status = $? == -1 ? 127 : ($? & 127) ? 128 + ($? & 127) : $? >> 8;
	write_file($out, sprintf("%.6f %d\n", $t1 - $t0, $status));
	exit $status;
}

sub cmd_base {
	my ($dir, $nsmall, $large) = @_;
	usage() unless defined $large;
	my $pool = pool(1, 8 * $MiB);
	my $plen = length($pool);
	for my $i (0 .. $nsmall - 1) {
		my $sub = sprintf('%s/data/small/d%03d', $dir, int($i / 100));
		make_path($sub) if $i % 100 == 0;
		my $size = 64 + int(rand(2048 - 64));
		write_file(sprintf('%s/f%05d.bin', $sub, $i), substr($pool, int(rand($plen - $size)), $size));
	}
	make_path("$dir/data/large");
	for (my $n = 0; $large > 0; $n++) {
		my $size = $MiB + int(rand(7 * $MiB));
		$size = $large if $size > $large;
		$large -= $size;
		my @chunks;
		for (my $left = $size; $left > 0; $left -= $MiB) {
			my $len = $left < $MiB ? $left : $MiB;
			push @chunks, substr($pool, int(rand($plen - $len)), $len);
		}
		write_file(sprintf('%s/data/large/f%03d.bin', $dir, $n), @chunks);
	}
}

sub cmd_context {
	my ($dir, $n) = @_;
	usage() unless defined $n;
	my $alphabet = join('', 'a' .. 'z', '0' .. '9', ' ', "\n");
	my @map = map { substr($alphabet, $_ % length($alphabet), 1) } 0 .. 255;
	my $text = join('', map { $map[$_] } unpack('C*', pool(2, $MiB)));
	for my $i (0 .. $n - 1) {
		my $d = int($i / 100);
		my $sub = sprintf('%s/pkg%03d/mod%d', $dir, int($d / 10), $d % 10);
		make_path($sub) if $i % 100 == 0;
		my $size = 100 + int(rand(4096 - 100 + 1));
		write_file(sprintf('%s/file%03d.txt', $sub, $i % 100), substr($text, int(rand(length($text) - $size)), $size));
	}
}

my $cmd = shift(@ARGV) // usage();
if ($cmd eq 'time') {
	cmd_time(@ARGV);
} elsif ($cmd eq 'base') {
	cmd_base(@ARGV);
} elsif ($cmd eq 'context') {
	cmd_context(@ARGV);
} else {
	usage();
}
