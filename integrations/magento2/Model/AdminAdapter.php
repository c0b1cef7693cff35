<?php
/**
 * The admin pages' only calls into Magento 2's admin: the request, the
 * module's settings (the token decrypted), the signed-in user, messages.
 */

declare(strict_types=1);

namespace OrderSync\MagentoBridge\Model;

use Magento\Backend\Model\Auth\Session;
use Magento\Framework\App\Config\ScopeConfigInterface;
use Magento\Framework\App\RequestInterface;
use Magento\Framework\Encryption\EncryptorInterface;
use Magento\Framework\Message\ManagerInterface;
use OrderSync\Bridge\Admin\AdminAdapter as Admin;

class AdminAdapter implements Admin
{
    public function __construct(
        private readonly RequestInterface $request,
        private readonly ScopeConfigInterface $config,
        private readonly EncryptorInterface $encryptor,
        private readonly Session $session,
        private readonly ManagerInterface $messages,
    ) {
    }

    public function param(string $name): mixed
    {
        return $this->request->getParam($name);
    }

    public function apiUrl(): ?string
    {
        return $this->config->getValue('order_sync/api/url');
    }

    public function apiToken(): ?string
    {
        $stored = (string) $this->config->getValue('order_sync/api/token');
        return $stored === '' ? null : $this->encryptor->decrypt($stored);
    }

    public function userName(): string
    {
        return (string) ($this->session->getUser()?->getUserName() ?? 'unknown');
    }

    public function addSuccess(string $message): void
    {
        $this->messages->addSuccessMessage($message);
    }

    public function addError(string $message): void
    {
        $this->messages->addErrorMessage($message);
    }
}
