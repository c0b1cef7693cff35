<?php
/**
 * Magento's admin, replaced: request parameters given by the test, the
 * module's settings, and the messages the admin would see.
 */

declare(strict_types=1);

use OrderSync\Bridge\Admin\AdminAdapter;

final class FakeAdmin implements AdminAdapter
{
    /** @var list<string> */
    public array $successes = [];
    /** @var list<string> */
    public array $errors = [];

    public function __construct(
        private array $params,
        private ?string $url,
        private ?string $token,
        private string $user = 'jane',
    ) {
    }

    public function param(string $name): mixed
    {
        return $this->params[$name] ?? null;
    }

    public function apiUrl(): ?string
    {
        return $this->url;
    }

    public function apiToken(): ?string
    {
        return $this->token;
    }

    public function userName(): string
    {
        return $this->user;
    }

    public function addSuccess(string $message): void
    {
        $this->successes[] = $message;
    }

    public function addError(string $message): void
    {
        $this->errors[] = $message;
    }
}
