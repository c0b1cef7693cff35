<?php
/**
 * Verifying order-sync's webhook signature in PHP.
 *
 *   php verify.php SECRET SIGNATURE_HEADER BODY_FILE [NOW]   # exit 0: genuine
 */

declare(strict_types=1);

/**
 * True when $header (X-Order-Sync-Signature: t=<unix>,v1=<hex>) signs the raw
 * $body (file_get_contents('php://input')) with $secret and is at most
 * $tolerance seconds old.
 */
function orderSyncSignatureIsValid(string $secret, string $header, string $body, int $now, int $tolerance = 300): bool
{
    $parts = [];
    foreach (explode(',', $header) as $item) {
        [$key, $value] = array_pad(explode('=', $item, 2), 2, '');
        $parts[$key] = $value;
    }
    if (!isset($parts['t'], $parts['v1']) || !ctype_digit($parts['t'])) {
        return false;
    }
    $timestamp = (int) $parts['t'];
    if (abs($now - $timestamp) > $tolerance) {
        return false;
    }
    $expected = hash_hmac('sha256', $timestamp . '.' . $body, $secret);
    return hash_equals($expected, $parts['v1']);
}

if (PHP_SAPI === 'cli' && isset($argv) && realpath($argv[0]) === __FILE__) {
    [, $secret, $header, $path] = $argv;
    $now = isset($argv[4]) ? (int) $argv[4] : time();
    exit(orderSyncSignatureIsValid($secret, $header, (string) file_get_contents($path), $now) ? 0 : 1);
}
