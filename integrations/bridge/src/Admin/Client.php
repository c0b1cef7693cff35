<?php
/**
 * order-sync's JSON API, as the Magento admin uses it: the order list, one
 * order's rows, and the operator actions (re-send, un-park, skip). Plain PHP
 * streams, so neither module needs the curl extension; every failure is an
 * ApiError whose message can be shown to the admin as it is.
 */

declare(strict_types=1);

namespace OrderSync\Bridge\Admin;

final class Client
{
    /** Where the admin sets the URL and the token, for the error messages. */
    public const SETTINGS = 'Stores → Configuration → Sales → Order Sync (Magento 1: System → Configuration → Sales → Order Sync)';

    private function __construct(
        private readonly string $baseUrl,
        private readonly string $token,
        private readonly float $timeout,
    ) {
    }

    /**
     * From the module's settings: order-sync's base URL (`http://host:8080`)
     * and the operators' token (`http.api_token`).
     */
    public static function fromSettings(?string $url, ?string $token, float $timeout = 10.0): self
    {
        $url = trim((string) $url);
        if ($url === '') {
            throw new ApiError('The order-sync URL is not set: ' . self::SETTINGS . '.');
        }
        $scheme = parse_url($url, PHP_URL_SCHEME);
        if (!in_array($scheme, ['http', 'https'], true) || parse_url($url, PHP_URL_HOST) === null) {
            throw new ApiError("The order-sync URL `$url` is not an http:// or https:// URL: " . self::SETTINGS . '.');
        }
        $token = trim((string) $token);
        if ($token === '') {
            throw new ApiError("The order-sync API token is not set (order-sync's http.api_token): " . self::SETTINGS . '.');
        }
        return new self(rtrim($url, '/'), $token, $timeout);
    }

    /**
     * A page of orders, newest first: `state`, `consumer`, `increment_id`
     * narrow it; `before` is the previous page's `next`.
     *
     * @return array{orders: list<array>, next: ?int}
     */
    public function orders(array $filter = [], int $limit = 50, ?int $before = null): array
    {
        $query = array_filter(
            [
                'state' => $filter['state'] ?? null,
                'consumer' => $filter['consumer'] ?? null,
                'increment_id' => $filter['increment_id'] ?? null,
                'limit' => $limit,
                'before' => $before,
            ],
            fn ($v) => $v !== null && $v !== ''
        );
        $page = $this->call('GET', '/api/orders?' . http_build_query($query));
        return ['orders' => $page['orders'] ?? [], 'next' => $page['next'] ?? null];
    }

    /** One order's rows and messages, or null when order-sync has no such order. */
    public function order(int $entityId): ?array
    {
        return $this->call('GET', '/api/orders/' . $entityId, null, true);
    }

    /** The consumers and their row counts by state. */
    public function summary(): array
    {
        return $this->call('GET', '/api/summary');
    }

    /** @param list<int> $entityIds @return array{orders: int, rows: int} */
    public function resend(array $entityIds, ?string $consumer): array
    {
        return $this->call('POST', '/api/resync', self::selection($entityIds, $consumer));
    }

    /** @param list<int> $entityIds @return array{rows: int} */
    public function unpark(array $entityIds, ?string $consumer): array
    {
        return $this->call('POST', '/api/unpark', self::selection($entityIds, $consumer));
    }

    /** @param list<int> $entityIds @return array{rows: int} */
    public function skip(array $entityIds, ?string $consumer, string $by): array
    {
        return $this->call('POST', '/api/skip', self::selection($entityIds, $consumer) + ['by' => $by]);
    }

    private static function selection(array $entityIds, ?string $consumer): array
    {
        $body = ['entity_ids' => array_values(array_map('intval', $entityIds))];
        if ($consumer !== null && $consumer !== '') {
            $body['consumer'] = $consumer;
        }
        return $body;
    }

    private function call(string $method, string $path, ?array $body = null, bool $notFoundIsNull = false): ?array
    {
        $headers = ['Authorization: Bearer ' . $this->token, 'Accept: application/json'];
        if ($body !== null) {
            $headers[] = 'Content-Type: application/json';
        }
        $context = stream_context_create(['http' => [
            'method' => $method,
            'header' => implode("\r\n", $headers),
            'content' => $body === null ? '' : json_encode($body, JSON_THROW_ON_ERROR),
            'timeout' => $this->timeout,
            'ignore_errors' => true, // the answer's body on 4xx/5xx: the API's error text
            'follow_location' => 0,
        ]]);
        $warning = null;
        set_error_handler(function (int $no, string $text) use (&$warning): bool {
            $warning = preg_replace('/^file_get_contents\([^)]*\): /', '', $text);
            return true;
        });
        try {
            $text = file_get_contents($this->baseUrl . $path, false, $context);
            $statusLine = $http_response_header[0] ?? '';
        } finally {
            restore_error_handler();
        }
        if ($text === false || $statusLine === '') {
            throw new ApiError(sprintf(
                'order-sync is not reachable at %s (%s); nothing was changed. Is it running, and is the URL under %s right?',
                $this->baseUrl,
                $warning ?? 'no answer',
                self::SETTINGS
            ));
        }
        $status = preg_match('#^HTTP/\S+\s+(\d{3})#', $statusLine, $m) ? (int) $m[1] : 0;
        $answer = json_decode($text, true);
        $error = is_array($answer) && isset($answer['error']) ? (string) $answer['error'] : trim(substr($text, 0, 300));
        if ($status === 404 && $notFoundIsNull) {
            return null;
        }
        if ($status === 401 || $status === 403) {
            throw new ApiError("order-sync refused the API token ($status: $error): set the operators' token (order-sync's http.api_token) under " . self::SETTINGS . '. Nothing was changed.');
        }
        if ($status < 200 || $status >= 300) {
            throw new ApiError("order-sync answered $status: $error. Nothing was changed.");
        }
        if (!is_array($answer)) {
            throw new ApiError("order-sync answered $status with something that is not JSON: " . substr($text, 0, 200));
        }
        return $answer;
    }
}
