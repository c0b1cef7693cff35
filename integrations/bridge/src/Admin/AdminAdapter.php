<?php
/**
 * The admin module's only calls into Magento's admin (request, settings, the
 * signed-in user, messages), so its controllers run in PHPUnit without a
 * Magento: each module implements it in a few lines.
 */

declare(strict_types=1);

namespace OrderSync\Bridge\Admin;

interface AdminAdapter
{
    /** A request parameter (GET or POST), or null. */
    public function param(string $name): mixed;

    /** order-sync's base URL, as set in the module's configuration. */
    public function apiUrl(): ?string;

    /** The operators' token, decrypted from the module's configuration. */
    public function apiToken(): ?string;

    /** The admin user's name, recorded with what they skip. */
    public function userName(): string;

    public function addSuccess(string $message): void;

    public function addError(string $message): void;
}
