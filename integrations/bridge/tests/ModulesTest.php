<?php
/**
 * The Magento modules' wiring, checked without a Magento: every class,
 * alias, layout file, route and ACL resource the XML and the code name
 * exists, so a typo cannot ship an admin page that fails only in a shop.
 */

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

final class ModulesTest extends TestCase
{
    private const M2 = __DIR__ . '/../../magento2';
    private const M1 = __DIR__ . '/../../magento1';
    private const M1_CODE = self::M1 . '/app/code/community/OrderSync/Bridge';

    /** @return list<string> */
    private static function files(string $dir, string $ext): array
    {
        $out = [];
        foreach (new RecursiveIteratorIterator(new RecursiveDirectoryIterator($dir, FilesystemIterator::SKIP_DOTS)) as $f) {
            if ($f->isFile() && str_ends_with($f->getFilename(), ".$ext")) {
                $out[] = $f->getPathname();
            }
        }
        sort($out);
        return $out;
    }

    /** @return list<string> ACL resource ids of a Magento 2 acl.xml */
    private static function m2Resources(): array
    {
        $acl = simplexml_load_file(self::M2 . '/etc/acl.xml');
        return array_map('strval', $acl->xpath('//resource/@id'));
    }

    public function test_magento2_names_only_classes_and_acl_resources_that_exist(): void
    {
        $classes = [];
        foreach (array_merge(self::files(self::M2 . '/etc', 'xml'), self::files(self::M2 . '/view', 'xml')) as $xml) {
            preg_match_all('/OrderSync\\\\MagentoBridge\\\\[A-Za-z\\\\]+/', file_get_contents($xml), $m);
            $classes = array_merge($classes, $m[0]);
        }
        self::assertContains('OrderSync\\MagentoBridge\\Block\\Adminhtml\\Order\\View\\Tab\\Sync', $classes);
        foreach (array_unique($classes) as $class) {
            $file = self::M2 . '/' . str_replace('\\', '/', substr($class, strlen('OrderSync\\MagentoBridge\\'))) . '.php';
            self::assertFileExists($file, "$class is named in the module's XML");
        }

        $resources = self::m2Resources();
        $used = [];
        foreach (self::files(self::M2 . '/Controller', 'php') as $php) {
            preg_match("/ADMIN_RESOURCE = '([^']+)'/", file_get_contents($php), $m);
            self::assertNotEmpty($m, "$php says which ACL resource it needs");
            $used[] = $m[1];
        }
        $menu = simplexml_load_file(self::M2 . '/etc/adminhtml/menu.xml');
        $used = array_merge($used, array_map('strval', $menu->xpath('//add/@resource')));
        $used[] = (string) simplexml_load_file(self::M2 . '/etc/adminhtml/system.xml')->xpath('//section/resource')[0];
        foreach ($used as $resource) {
            self::assertContains($resource, $resources);
        }

        // The menu's action goes to a controller of the module's admin route.
        $route = simplexml_load_file(self::M2 . '/etc/adminhtml/routes.xml')->xpath('//route/@frontName')[0];
        [$front, $controller, $action] = explode('/', (string) $menu->xpath('//add/@action')[0]);
        self::assertSame((string) $route, $front);
        self::assertFileExists(self::M2 . '/Controller/Adminhtml/' . ucfirst($controller) . '/' . ucfirst($action) . '.php');
        // The layout handle of that page is the route's.
        self::assertFileExists(self::M2 . "/view/adminhtml/layout/{$front}_{$controller}_{$action}.xml");
    }

    public function test_magento1_names_only_aliases_layouts_and_acl_paths_that_exist(): void
    {
        $config = simplexml_load_file(self::M1_CODE . '/etc/config.xml');
        foreach (['models' => 'Model', 'blocks' => 'Block', 'helpers' => 'Helper'] as $group => $dir) {
            self::assertSame("OrderSync_Bridge_$dir", (string) $config->global->$group->ordersync_bridge->class);
        }
        $code = '';
        foreach (self::files(self::M1_CODE, 'php') as $php) {
            $code .= file_get_contents($php);
        }
        $layout = self::M1 . '/app/design/adminhtml/default/default/layout/'
            . (string) $config->adminhtml->layout->updates->ordersync_bridge->file;
        self::assertFileExists($layout);
        $code .= file_get_contents($layout);

        // Every alias names a file: getModel('ordersync_bridge/adminAdapter')
        // is Model/AdminAdapter.php, a block alias's underscores are folders.
        preg_match_all("#(getModel|createBlock|helper)\\('ordersync_bridge(?:/([A-Za-z_]+))?'\\)#", $code, $m, PREG_SET_ORDER);
        preg_match_all('#<block>ordersync_bridge/([a-z_]+)</block>#', $code, $blocks);
        self::assertNotEmpty($blocks[1]);
        $aliases = array_map(fn ($x) => [$x[1], $x[2] ?? 'data'], $m);
        foreach ($blocks[1] as $b) {
            $aliases[] = ['createBlock', $b];
        }
        foreach ($aliases as [$kind, $alias]) {
            $dir = ['getModel' => 'Model', 'createBlock' => 'Block', 'helper' => 'Helper'][$kind];
            $path = implode('/', array_map('ucfirst', explode('_', $alias === '' ? 'data' : $alias)));
            self::assertFileExists(self::M1_CODE . "/$dir/$path.php", "$kind('ordersync_bridge/$alias')");
        }

        // The menu goes to the module's admin controller; each ACL path asked exists.
        $admin = simplexml_load_file(self::M1_CODE . '/etc/adminhtml.xml');
        self::assertSame('adminhtml/ordersync', (string) $admin->menu->sales->children->ordersync->action);
        self::assertSame('OrderSync_Bridge_Adminhtml', (string) $config->admin->routers->adminhtml->args->modules->OrderSync_Bridge);
        self::assertFileExists(self::M1_CODE . '/controllers/Adminhtml/OrdersyncController.php');
        preg_match_all("#'(sales/ordersync[a-z/]*)'#", $code, $paths);
        self::assertNotEmpty($paths[1]);
        foreach (array_unique($paths[1]) as $path) {
            $node = $admin->acl->resources->admin;
            foreach (explode('/', $path) as $part) {
                $node = $node->children->$part;
                self::assertCount(1, $node, "ACL path $path: no `$part`");
            }
        }
        self::assertNotNull($admin->acl->resources->admin->children->system->children->config->children->order_sync);

        // The shell loads the bridge through the helper's autoloader: a list
        // of its files goes stale (it once lacked Answer.php, and every order
        // failed in a real OpenMage shop).
        $shell = file_get_contents(self::M1 . '/shell/order_sync_consume.php');
        self::assertStringContainsString("Mage::helper('ordersync_bridge')->requireLibrary()", $shell);
        self::assertStringNotContainsString('/OrderSync/Bridge/$class.php', $shell);
        $helper = file_get_contents(self::M1_CODE . '/Helper/Data.php');
        foreach (self::files(__DIR__ . '/../src', 'php') as $file) {
            // Each class the autoloader may be asked for is where it looks.
            $class = 'OrderSync\\Bridge\\' . str_replace('/', '\\', substr($file, strlen(__DIR__ . '/../src/'), -4));
            self::assertStringContainsString('namespace ' . substr($class, 0, strrpos($class, '\\')) . ';', file_get_contents($file), $file);
        }
        self::assertStringContainsString("str_replace('\\\\', '/', substr(\$class, strlen(\$prefix)))", $helper);

        // modman and composer install every file of the module.
        $modman = file_get_contents(self::M1 . '/modman');
        $composer = json_decode(file_get_contents(self::M1 . '/composer.json'), true);
        $mapped = array_column($composer['extra']['map'], 0);
        foreach (['app/code/community/OrderSync/Bridge', 'app/design/adminhtml/default/default/layout/ordersync_bridge.xml', 'shell/order_sync_consume.php'] as $path) {
            self::assertStringContainsString($path, $modman);
            self::assertContains($path, $mapped);
        }
    }
}
