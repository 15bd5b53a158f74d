# One VM per region running the Ballot stateful service (examples/stateful-service), as in the
# seed article, without provisioners: each VM gets a static public IP first, and every VM's
# cloud-init carries the member list made from all of them.
#
#   terraform init && terraform apply -var 'ssh_public_key=...' -var 'admin_cidr=203.0.113.4/32'
#   curl http://$(terraform output -json public_ips | jq -r '.[0]'):8080/1

terraform {
  required_version = ">= 1.5"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 3.100"
    }
  }
}

provider "azurerm" {
  features {}
}

locals {
  ids     = [for i, _ in var.regions : "n${i + 1}"]
  members = join(",", [for i, ip in azurerm_public_ip.node : "n${i + 1}=http://${ip.ip_address}:${var.port}"])
}

resource "azurerm_resource_group" "ballot" {
  name     = var.name
  location = var.regions[0]
}

resource "azurerm_virtual_network" "node" {
  count               = length(var.regions)
  name                = "${var.name}-vnet-${count.index + 1}"
  location            = var.regions[count.index]
  resource_group_name = azurerm_resource_group.ballot.name
  address_space       = ["10.${count.index + 10}.0.0/16"]
}

resource "azurerm_subnet" "node" {
  count                = length(var.regions)
  name                 = "nodes"
  resource_group_name  = azurerm_resource_group.ballot.name
  virtual_network_name = azurerm_virtual_network.node[count.index].name
  address_prefixes     = ["10.${count.index + 10}.1.0/24"]
}

resource "azurerm_public_ip" "node" {
  count               = length(var.regions)
  name                = "${var.name}-ip-${count.index + 1}"
  location            = var.regions[count.index]
  resource_group_name = azurerm_resource_group.ballot.name
  allocation_method   = "Static"
  sku                 = "Standard"
}

resource "azurerm_network_security_group" "node" {
  count               = length(var.regions)
  name                = "${var.name}-nsg-${count.index + 1}"
  location            = var.regions[count.index]
  resource_group_name = azurerm_resource_group.ballot.name

  # The service and the consensus protocol share one port: peers and clients.
  security_rule {
    name                       = "service"
    priority                   = 100
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = tostring(var.port)
    source_address_prefixes    = concat([for ip in azurerm_public_ip.node : ip.ip_address], var.client_cidrs)
    destination_address_prefix = "*"
  }
  security_rule {
    name                       = "ssh"
    priority                   = 110
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = "22"
    source_address_prefix      = var.admin_cidr
    destination_address_prefix = "*"
  }
}

resource "azurerm_network_interface" "node" {
  count               = length(var.regions)
  name                = "${var.name}-nic-${count.index + 1}"
  location            = var.regions[count.index]
  resource_group_name = azurerm_resource_group.ballot.name
  ip_configuration {
    name                          = "primary"
    subnet_id                     = azurerm_subnet.node[count.index].id
    private_ip_address_allocation = "Dynamic"
    public_ip_address_id          = azurerm_public_ip.node[count.index].id
  }
}

resource "azurerm_network_interface_security_group_association" "node" {
  count                     = length(var.regions)
  network_interface_id      = azurerm_network_interface.node[count.index].id
  network_security_group_id = azurerm_network_security_group.node[count.index].id
}

resource "azurerm_linux_virtual_machine" "node" {
  count                 = length(var.regions)
  name                  = "${var.name}-${local.ids[count.index]}"
  location              = var.regions[count.index]
  resource_group_name   = azurerm_resource_group.ballot.name
  size                  = var.vm_size
  admin_username        = var.admin_username
  network_interface_ids = [azurerm_network_interface.node[count.index].id]

  admin_ssh_key {
    username   = var.admin_username
    public_key = var.ssh_public_key
  }
  os_disk {
    caching              = "ReadWrite"
    storage_account_type = "Premium_LRS" # the WAL fdatasyncs every batch: disk latency is write latency
  }
  source_image_reference {
    publisher = "Debian"
    offer     = "debian-12"
    sku       = "12-gen2"
    version   = "latest"
  }
  custom_data = base64encode(templatefile("${path.module}/cloud-init.yaml.tftpl", {
    id                 = local.ids[count.index]
    members            = local.members
    port               = var.port
    ballot_version     = var.ballot_version
    heartbeat_ms       = var.heartbeat_interval_ms
    election_ms        = var.election_timeout_ms
    unit               = file("${path.module}/../systemd/stateful-service@.service")
  }))
}
